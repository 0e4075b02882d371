// Package clientsec holds the security settings a Kafka client needs to
// reach a secured cluster — TLS and SASL — and builds them into franz-go
// options ([Settings.KgoOpts]) and a sarama configuration
// ([Settings.ApplySarama]) from the same values, so that every command and
// library client of kafkaguard connects the same way.
//
// Settings are filled in by code, by [LoadProperties] from a Kafka client
// properties file (the file Kafka's own tools take as --command-config), or
// both: fields set later override earlier ones. Files (CA bundle,
// certificate, key) are read when they are named, so that an error names
// the setting or property that pointed at them; a token file is read again
// at every authentication, so that a rotated token is picked up.
//
// # Security protocols and mechanisms
//
// security.protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. The SASL
// mechanisms are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (a
// static token, a token file, or an unsecured token built from JAAS options
// as Kafka's default login module does). GSSAPI (Kerberos) and AWS_MSK_IAM
// are not supported. TLS uses the system roots unless a CA bundle is given;
// server certificates are always verified, and the host name too unless
// ssl.endpoint.identification.algorithm is empty; skipping verification
// altogether needs [Settings.InsecureSkipVerify], which no properties key
// sets.
//
// # Properties file
//
// [LoadProperties] understands exactly the keys [SupportedKeys] lists. Any
// other key beginning with "security.", "sasl." or "ssl." is refused with
// its name, since ignoring it could connect with less security than the
// file asks for. Keys outside those prefixes (client.id, bootstrap.servers,
// acks, request.timeout.ms, ...) configure other parts of a Java client; they
// are ignored. Key stores and trust stores must be PEM files
// (ssl.keystore.type=PEM, ssl.truststore.type=PEM): JKS and PKCS12 are
// refused, as are encrypted private keys (ssl.key.password) — decrypt the
// key with "openssl pkcs8 -in key.pem -out key-plain.pem" first.
package clientsec
