package server

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
)

// scramMechanisms are the SCRAM mechanisms by their wire numbers (Kafka's ScramMechanism).
var scramMechanisms = map[int8]string{1: sasl.ScramSHA256, 2: sasl.ScramSHA512}

func scramMechanismNumber(name string) int8 {
	for n, m := range scramMechanisms {
		if m == name {
			return n
		}
	}
	return 0
}

// handleDescribeUserSCRAMCredentials lists users' SCRAM mechanisms and iterations (never the
// credentials), as Kafka: no users named lists every user; a named user without credentials is
// RESOURCE_NOT_FOUND, one named twice DUPLICATE_RESOURCE.
func (b *Broker) handleDescribeUserSCRAMCredentials(req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	all := b.scramUsers()
	var names []string
	if len(req.Users) == 0 {
		names = slices.Sorted(maps.Keys(all))
	} else {
		for _, u := range req.Users {
			names = append(names, u.Name)
		}
	}
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	for _, name := range names {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = name
		creds := all[name]
		switch {
		case seen[name] > 1:
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = new("Cannot describe SCRAM credentials for the same user twice in a single request: " + name)
		case len(creds) == 0:
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = new("Attempt to describe a user credential that does not exist: " + name)
		default:
			for _, m := range slices.Sorted(maps.Keys(creds)) {
				ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				ci.Mechanism, ci.Iterations = scramMechanismNumber(m), creds[m].Iterations
				r.CredentialInfos = append(r.CredentialInfos, ci)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}
