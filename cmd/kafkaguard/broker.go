package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// runBroker serves the bundled broker until the context ends (SIGINT/SIGTERM). Once every broker
// accepts connections it prints exactly one line to stdout:
//
//	ready bootstrap=127.0.0.1:9092[,127.0.0.1:9093...][ control=http://HOST:PORT]
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.Int("brokers", 1, "number of brokers to run in this process (node ids 0..N-1, ports PORT..PORT+N-1)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 9092, "port of broker 0; broker i listens on port+i (0: pick free ports)")
	data := fs.String("data", "", "data directory (default: a temporary directory removed on exit)")
	control := fs.String("control", "", "serve the fault-control HTTP API on HOST:PORT")
	lagMax := fs.Duration("replica-lag-max", 10*time.Second, "replica.lag.time.max.ms: a follower this far behind leaves the ISR")
	session := fs.Duration("session-timeout", 3*time.Second, "broker.session.timeout.ms: a broker silent this long is declared dead")
	minISR := fs.Int("min-insync-replicas", 1, "broker default for min.insync.replicas")
	unclean := fs.Bool("unclean-leader-election", false, "broker default for unclean.leader.election.enable")
	partitions := fs.Int("num-partitions", 1, "num.partitions for auto-created topics")
	noAuto := fs.Bool("no-auto-create-topics", false, "turn auto.create.topics.enable off")
	offsetsParts := fs.Int("offsets-partitions", 4, "offsets.topic.num.partitions")
	newLogger := logFlag(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kafkaguard broker: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *brokers < 1 || *brokers > 64 {
		fmt.Fprintf(stderr, "kafkaguard broker: --brokers must be between 1 and 64, got %d\n", *brokers)
		return 2
	}
	if *port < 0 || *port+*brokers-1 > 65535 {
		fmt.Fprintf(stderr, "kafkaguard broker: --port %d leaves no room for %d brokers\n", *port, *brokers)
		return 2
	}
	if *minISR < 1 {
		fmt.Fprintf(stderr, "kafkaguard broker: --min-insync-replicas must be at least 1\n")
		return 2
	}
	logger := newLogger(stderr)

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
		Logger:                  logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "kafkaguard broker: %v\n", err)
		return 1
	}
	defer cl.Close()

	ready := "ready bootstrap=" + strings.Join(cl.Bootstrap(), ",")
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			fmt.Fprintf(stderr, "kafkaguard broker: --control: %v\n", err)
			return 1
		}
		srv := &http.Server{Handler: cl.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
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
	return 0
}
