package server

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
)

// handleSASLHandshake picks the connection's mechanism, as Kafka's SaslServerAuthenticator: a
// mechanism that is not enabled is answered UNSUPPORTED_SASL_MECHANISM with the enabled ones,
// a second handshake ILLEGAL_SASL_STATE, and both close the connection. On a listener without
// SASL the answer is ILLEGAL_SASL_STATE (Kafka's KafkaApis), and the connection stays.
func (b *Broker) handleSASLHandshake(auth *connAuth, req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	if auth == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	resp.SupportedMechanisms = b.sasl.Mechanisms()
	if auth.ex != nil || auth.authenticated.Load() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		auth.last = true
		return resp
	}
	ex, err := b.sasl.Start(req.Mechanism)
	if err != nil {
		if errors.Is(err, sasl.ErrUnsupportedMechanism) {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		} else {
			resp.ErrorCode = kerr.IllegalSaslState.Code
		}
		b.lg.Info("SASL handshake refused", "mechanism", req.Mechanism, "err", err)
		auth.last = true
		return resp
	}
	auth.ex = ex
	return resp
}
