package server

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
)

// handleSASLAuthenticate feeds the client's next message to the connection's exchange. A
// refused one is answered SASL_AUTHENTICATION_FAILED with Kafka's text and closes the
// connection; one before a handshake, or after the end, ILLEGAL_SASL_STATE, and closes it too.
// Sessions do not expire (SessionLifetimeMillis 0: no re-authentication).
func (b *Broker) handleSASLAuthenticate(auth *connAuth, req *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(code int16, text string) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = code, &text
		if auth != nil {
			auth.last = true
		}
		return resp
	}
	if auth == nil {
		return fail(kerr.IllegalSaslState.Code, "SASL is not enabled on this listener")
	}
	if auth.ex == nil || auth.authenticated.Load() {
		return fail(kerr.IllegalSaslState.Code, "Unexpected SaslAuthenticate request: no SaslHandshake before it, or authentication already complete")
	}
	answer, done, err := auth.ex.Step(req.SASLAuthBytes)
	if err != nil {
		b.lg.Info("SASL authentication failed", "mechanism", auth.ex.Mechanism(), "err", err)
		var f *sasl.Failure
		if errors.As(err, &f) {
			return fail(kerr.SaslAuthenticationFailed.Code, f.Public)
		}
		return fail(kerr.IllegalSaslState.Code, err.Error())
	}
	resp.SASLAuthBytes = answer
	if done {
		auth.user = auth.ex.User()
		auth.authenticated.Store(true)
		b.lg.Debug("SASL authenticated", "mechanism", auth.ex.Mechanism(), "user", auth.user)
	}
	return resp
}
