package server

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
)

// handleAlterUserSCRAMCredentials creates, replaces and deletes SCRAM credentials in the
// cluster metadata (what kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=…]'
// sends: the salted password, never the password), validated as Kafka's ControllerApis and
// ScramControlManager do. One result per user; a user refused by validation changes nothing.
func (b *Broker) handleAlterUserSCRAMCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type userResult struct {
		code    int16
		message string
		changes []ScramChange
	}
	var order []string
	byUser := map[string]*userResult{}
	result := func(user string) *userResult {
		r := byUser[user]
		if r == nil {
			r = &userResult{}
			byUser[user] = r
			order = append(order, user)
		}
		return r
	}
	refuse := func(r *userResult, code int16, msg string) {
		if r.code == 0 {
			r.code, r.message = code, msg
		}
	}
	seen := map[[2]string]bool{}
	check := func(user string, mech int8) (*userResult, string, bool) {
		r := result(user)
		name, ok := scramMechanisms[mech]
		switch {
		case user == "":
			refuse(r, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case !ok:
			refuse(r, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		case seen[[2]string{user, name}]:
			refuse(r, kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		default:
			seen[[2]string{user, name}] = true
			return r, name, true
		}
		return r, name, false
	}
	for _, d := range req.Deletions {
		if r, mech, ok := check(d.Name, d.Mechanism); ok {
			r.changes = append(r.changes, ScramChange{User: d.Name, Mechanism: mech, Delete: true})
		}
	}
	for _, u := range req.Upsertions {
		r, mech, ok := check(u.Name, u.Mechanism)
		switch {
		case !ok:
		case u.Iterations < sasl.MinIterations:
			refuse(r, kerr.UnacceptableCredential.Code, "Too few iterations")
		case u.Iterations > sasl.MaxIterations:
			refuse(r, kerr.UnacceptableCredential.Code, "Too many iterations")
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
			refuse(r, kerr.UnacceptableCredential.Code, "Salt and salted password must not be empty")
		default:
			r.changes = append(r.changes, ScramChange{User: u.Name, Mechanism: mech,
				Credential: sasl.CredentialFromSalted(mech, u.SaltedPassword, u.Salt, int(u.Iterations))})
		}
	}
	var changes []ScramChange
	var owners []*userResult
	for _, user := range order {
		r := byUser[user]
		if r.code != 0 {
			continue
		}
		for _, ch := range r.changes {
			changes = append(changes, ch)
			owners = append(owners, r)
		}
	}
	if len(changes) > 0 {
		for i, err := range b.cfg.Controller.AlterScramCredentials(ctx, changes) {
			if err == nil {
				continue
			}
			var ke *kerr.Error
			code := kerr.UnknownServerError.Code
			if errors.As(err, &ke) {
				code = ke.Code
			}
			refuse(owners[i], code, err.Error())
		}
	}
	for _, user := range order {
		r := byUser[user]
		rr := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		rr.User, rr.ErrorCode = user, r.code
		if r.code != 0 {
			rr.ErrorMessage = new(r.message)
		}
		resp.Results = append(resp.Results, rr)
	}
	return resp
}
