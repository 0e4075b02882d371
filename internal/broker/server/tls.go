package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS secures a node's listener and its own connections to the other nodes (its replica
// fetchers'). Every node of a bundled cluster presents the same certificate, and the nodes
// trust exactly that certificate from each other: a fetcher checks that the leader shows it,
// and a listener that verifies client certificates accepts it besides those its client CAs
// signed.
type TLS struct {
	// Server is the listener's configuration.
	Server *tls.Config
	// Client is the replica fetchers' configuration.
	Client *tls.Config
}

// NewTLS returns the TLS of nodes presenting cert. With clientCAs, clients must present a
// certificate one of them signed (or the nodes' own, as the fetchers do); without, clients
// present none.
func NewTLS(cert tls.Certificate, clientCAs *x509.CertPool) (*TLS, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("server: TLS certificate is empty")
	}
	own := cert.Certificate[0]
	isOwn := func(raw [][]byte) bool { return len(raw) > 0 && bytes.Equal(raw[0], own) }
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		// RequireAnyClientCert and the check below, rather than RequireAndVerifyClientCert, so
		// that the nodes' own certificate passes whatever its key usages and issuer.
		srv.ClientAuth = tls.RequireAnyClientCert
		srv.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if isOwn(raw) {
				return nil
			}
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("server: client certificate: %w", err)
				}
				certs = append(certs, c)
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: clientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				return fmt.Errorf("server: client certificate: %w", err)
			}
			return nil
		}
	}
	cli := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// The leader's certificate is checked against the nodes' own below, not against roots
		// and a host name: the nodes trust exactly their shared certificate.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if !isOwn(raw) {
				return errors.New("server: the other node does not present the cluster's certificate")
			}
			return nil
		},
	}
	return &TLS{Server: srv, Client: cli}, nil
}

// LoadTLS reads a PEM certificate (chain) and key, and optionally PEM client CAs, for NewTLS.
func LoadTLS(certFile, keyFile, clientCAFile string) (*TLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS certificate: %w", err)
	}
	var pool *x509.CertPool
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server: TLS client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: TLS client CA %s: no PEM certificate in it", clientCAFile)
		}
	}
	return NewTLS(cert, pool)
}
