package main

import (
	"context"

	"net"
	"os"

	"github.com/kafkaguard/kafkaguard/clientsec"
)

// envControlToken holds the control API's bearer token when no
// --control-token-file is given.
const envControlToken = "KAFKAGUARD_CONTROL_TOKEN"

// controlToken reads the control API's token from file (the flag
// --control-token-file) or else $KAFKAGUARD_CONTROL_TOKEN; "" when neither
// is set.
func controlToken(file string) (string, error) {
	if file == "" {
		return os.Getenv(envControlToken), nil
	}
	tok, err := clientsec.ReadSecret(file)
	if err != nil {
		return "", usageErrorf("--control-token-file: %w", err)
	}
	if tok == "" {
		return "", usageErrorf("--control-token-file: %s is empty", file)
	}
	return tok, nil
}

// controlListenAddr completes the address of --control: without a host it
// is loopback (127.0.0.1). A host that is not loopback (all of its
// addresses) is refused unless the API is guarded by a token.
func controlListenAddr(ctx context.Context, addr string, guarded bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageErrorf("--control %q: %w", addr, err)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if guarded {
		return addr, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", usageErrorf("--control %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return "", usageErrorf("--control %s is not a loopback address: anyone who reaches it could kill brokers; "+
				"guard it with --control-token-file or $%s, or bind 127.0.0.1", addr, envControlToken)
		}
	}
	return addr, nil
}
