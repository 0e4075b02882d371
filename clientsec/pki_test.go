package clientsec

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// testPKI is a throwaway CA (testkit.CA) with a server certificate for "broker.test" and
// 127.0.0.1 and a client certificate for "client.test", written as PEM files in a temp dir.
type testPKI struct {
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	client                string // the client's key and certificate in one file, a PEM keystore
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	dir := t.TempDir()
	write := func(name string, b ...[]byte) string {
		path := filepath.Join(dir, name)
		var all []byte
		for _, x := range b {
			all = append(all, x...)
		}
		if err := os.WriteFile(path, all, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	server, client := ca.Issue(t, "broker.test"), ca.Issue(t, "client.test")
	p := testPKI{caFile: write("ca.pem", ca.PEM)}
	p.serverCert, p.serverKey = server.WriteFiles(t)
	p.clientCert, p.clientKey = client.WriteFiles(t)
	p.client = write("client-keystore.pem", client.KeyPEM, client.CertPEM)
	return p
}

// serve starts a TLS server that requires a client certificate when
// clientCA is set; each accepted connection reports the client's
// certificate subject (or "") on the returned channel after the handshake.
func (p testPKI) serve(t *testing.T, requireClient bool) (string, <-chan string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if requireClient {
		pool, err := LoadCA(p.caFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	peers := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				name := ""
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					name = pc[0].Subject.CommonName
				}
				peers <- name
			}()
		}
	}()
	return ln.Addr().String(), peers
}
