package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

const brokerLong = `Runs the bundled Kafka-protocol broker: one node, or a cluster of --brokers
nodes in this process (node ids 0..N-1 listening on ports PORT..PORT+N-1),
until SIGINT or SIGTERM. Once every broker accepts connections it prints
exactly one line to stdout:

	ready bootstrap=127.0.0.1:9092[,127.0.0.1:9093...][ control=http://HOST:PORT]

With --control it also serves the fault-control HTTP API (kill, restart,
power-loss, isolate, pause, cut links, cut from the controller, add latency;
see the README) that "kafkaguard verify --control" and kafkatest use. It
listens on 127.0.0.1 when --control names no host, and refuses a host that is
not loopback unless a token guards it (--control-token-file FILE or
$KAFKAGUARD_CONTROL_TOKEN): then every request needs "Authorization: Bearer
TOKEN" and gets 401 without it. Logs go to stderr.

With --tls-cert and --tls-key the listeners speak TLS only (--tls-client-ca
also requires client certificates); with --sasl-user or --sasl-users-file
every connection must authenticate first with one of --sasl-mechanisms
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with unsecured tokens as
Kafka's default validator), and the brokers authenticate to each other too.
Passwords come from files, never from the command line. SCRAM users can also
be created with kafka-configs.sh (AlterUserScramCredentials).

Exit status: 0 after a clean shutdown on SIGINT or SIGTERM, 1 when the
cluster could not start (e.g. a port is taken), 2 for bad usage.`

// newBrokerCmd is "kafkaguard broker": it serves the bundled broker until the context ends
// (SIGINT/SIGTERM). Once every broker accepts connections it prints exactly one line to stdout:
//
//	ready bootstrap=127.0.0.1:9092[,127.0.0.1:9093...][ control=http://HOST:PORT]
func newBrokerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker [flags]",
		Short: "Run the bundled Kafka-protocol broker (one node or a cluster in one process)",
		Long:  brokerLong,
		Example: `  kafkaguard broker --brokers 1 --port 9092 --data /tmp/kg
  kafkaguard broker --brokers 3 --port 9092 --control 127.0.0.1:9990
  kafkaguard broker --port 0 --num-partitions 12 --log-level debug
  kafkaguard broker --tls-cert broker.pem --tls-key broker-key.pem --sasl-user alice:alice.password`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	brokers := intFlag(fs, "brokers", 1, between(1, 64), "number of brokers to run in this process (node ids 0..N-1, ports PORT..PORT+N-1)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 9092, "port of broker 0; broker i listens on port+i (0: pick free ports)")
	data := fs.String("data", "", "data directory (default: a temporary directory removed on exit)")
	control := fs.String("control", "", "serve the fault-control HTTP API on HOST:PORT (no HOST: 127.0.0.1; a non-loopback HOST needs a token)")
	controlTokenFile := fs.String("control-token-file", "", "require Authorization: Bearer <the token in FILE> on every control API request (else $"+envControlToken+")")
	lagMax := durationFlag(fs, "replica-lag-max", 10*time.Second, kafkaMillis, "replica.lag.time.max.ms: a follower this far behind leaves the ISR")
	session := durationFlag(fs, "session-timeout", 3*time.Second, kafkaMillis, "broker.session.timeout.ms: a broker silent this long is declared dead")
	minISR := intFlag(fs, "min-insync-replicas", 1, atLeast(1), "broker default for min.insync.replicas")
	unclean := fs.Bool("unclean-leader-election", false, "broker default for unclean.leader.election.enable")
	partitions := intFlag(fs, "num-partitions", 1, between(1, maxPartitions), "num.partitions for auto-created topics")
	noAuto := fs.Bool("no-auto-create-topics", false, "turn auto.create.topics.enable off")
	offsetsParts := intFlag(fs, "offsets-partitions", 4, between(1, maxPartitions), "offsets.topic.num.partitions")
	security := brokerSecurityFlags(fs)
	newLogger := logFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		if *port < 0 || *port+*brokers-1 > 65535 {
			return usageErrorf("--port %d leaves no room for %d brokers", *port, *brokers)
		}
		tlsCfg, saslCfg, err := security.config()
		if err != nil {
			return err
		}
		logger := newLogger(stderr)
		controlTok, err := controlToken(*controlTokenFile)
		if err != nil {
			return err
		}
		controlAddr := *control
		if controlAddr != "" {
			if controlAddr, err = controlListenAddr(ctx, controlAddr, controlTok != ""); err != nil {
				return err
			}
		} else if *controlTokenFile != "" {
			return usageErrorf("--control-token-file needs --control")
		}

		cl, err := cluster.Start(ctx, cluster.Config{
			Brokers: *brokers, Host: *host, Port: *port, DataDir: *data,
			SessionTimeout: *session, ReplicaLagMax: *lagMax,
			Defaults: meta.Defaults{
				meta.ConfigMinISR:          strconv.Itoa(*minISR),
				meta.ConfigUncleanElection: strconv.FormatBool(*unclean),
			},
			OffsetsPartitions:       int32(*offsetsParts),
			DefaultPartitions:       int32(*partitions),
			DisableAutoCreateTopics: *noAuto,
			TLS:                     tlsCfg,
			SASL:                    saslCfg,
			Logger:                  logger,
		})
		if err != nil {
			return failure(err)
		}
		defer cl.Close()

		ready := "ready bootstrap=" + strings.Join(cl.Bootstrap(), ",")
		if *control != "" {
			ln, err := net.Listen("tcp", controlAddr)
			if err != nil {
				return failure(fmt.Errorf("--control: %w", err))
			}
			handler := cl.ControlHandler()
			if controlTok != "" {
				handler = cluster.RequireBearer(controlTok, handler)
			}
			srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					logger.Error("control API stopped", "err", err)
				}
			}()
			defer srv.Close()
			ready += " control=http://" + ln.Addr().String()
		}
		fmt.Fprintln(stdout, ready)
		<-ctx.Done()
		logger.Info("shutting down")
		return nil
	}
	return cmd
}

// maxPartitions is the most partitions the bundled broker creates for one topic in one request
// (the controller's limit per CreateTopics).
const maxPartitions = 10000
