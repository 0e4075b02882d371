#!/usr/bin/env bash
# kafka.sh — fetch Apache Kafka 4.x from Maven Central and run real KRaft
# clusters (1 or 3 combined broker+controller nodes) on 127.0.0.1.
#
# Usage: kafka.sh [--dir DIR] COMMAND [ARGS...]   (see `kafka.sh help`)
#
# Nothing is written inside the repository: jars go to $KAFKAGUARD_KAFKA_CACHE
# (default ~/.cache/kafkaguard/kafka), cluster data, pid files and logs to the
# run dir (--dir, $KAFKAGUARD_KAFKA_RUN, default $KAFKAGUARD_KAFKA_CACHE/run).
# Nodes are detached from the caller: always run `kafka.sh stop` when done.
#
# Each node also has a SASL_SSL listener (SCRAM-SHA-512) on base port + 200:
# start makes a throwaway CA and broker certificate (PEM, openssl) and a SCRAM
# user with a random password in the run dir, and writes a Kafka client
# properties file for it (`kafka.sh client-config` prints its path,
# `kafka.sh sasl-bootstrap` the listeners). None of it is ever committed.
set -euo pipefail

PROG=kafka.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/pom.xml"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
CACHE=${KAFKAGUARD_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kafkaguard/kafka}
LIB="$CACHE/$KAFKA_VERSION/lib"
RUN=${KAFKAGUARD_KAFKA_RUN:-$CACHE/run}
# Seconds to wait for brokers to answer after start/restart.
START_TIMEOUT=${KAFKAGUARD_KAFKA_START_TIMEOUT:-120}
# Seconds between SIGTERM and SIGKILL in stop.
STOP_TIMEOUT=${KAFKAGUARD_KAFKA_STOP_TIMEOUT:-20}
HEAP_OPTS=${KAFKAGUARD_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
JVM_OPTS=${KAFKAGUARD_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
# JVM options for `tool` and the helper tools: they start fast (C1 only).
TOOL_OPTS=${KAFKAGUARD_KAFKA_TOOL_OPTS:--Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true}
JAVA=${JAVA:-java}
# Broker settings added by start --config.
EXTRA_CONFIG=()
if [[ -n "${JAVA_HOME:-}" && "$JAVA" == java ]]; then JAVA="$JAVA_HOME/bin/java"; fi

die() { echo "$PROG: error: $*" >&2; exit 1; }
# unavailable exits 69 (EX_UNAVAILABLE) when a prerequisite is missing, so a
# test suite can tell "no Java here" from "Kafka failed".
unavailable() { echo "$PROG: unavailable: $*" >&2; exit 69; }
note() { echo "$PROG: $*" >&2; }

usage() {
	cat <<'EOF'
usage: kafka.sh [--dir DIR] COMMAND [ARGS...]

commands:
  fetch                      download Kafka and its runtime jars into the cache (skipped when complete)
  start [--nodes 1|3] [--base-port 19092] [--config KEY=VALUE]...
                             format and start a KRaft cluster; wait until every broker answers,
                             then print: ready bootstrap=127.0.0.1:19092,...
                             (already running: just checks and prints the line again);
                             --config adds a broker setting to every node's server.properties
  stop                       stop every node (SIGTERM, SIGKILL after $KAFKAGUARD_KAFKA_STOP_TIMEOUT s);
                             data and logs stay in the run dir until the next start
  clean                      stop, then delete the run dir
  kill NODE_ID               SIGKILL one node (ids are 1..N)
  pause NODE_ID              SIGSTOP one node: it stops answering, fetching and voting, keeps its
                             connections and state (a stalled machine); kill and stop still work
  resume NODE_ID             SIGCONT a paused node
  restart NODE_ID [--no-wait]
                             start a node again on its existing data, wait until it answers
                             (--no-wait: return once its process is launched: a fault injector
                             must not wait while the other nodes may be paused or killed)
  status                     one line per node; exit 0 when all run, 3 otherwise
  bootstrap                  print the bootstrap servers (PLAINTEXT)
  sasl-bootstrap             print the SASL_SSL (SCRAM-SHA-512) listeners: base port + 200
  client-config              print the path of the client properties file for the SASL_SSL
                             listeners (security.protocol, sasl.jaas.config, ssl.truststore.*),
                             usable as --command-config by kafkaguard and Kafka's own tools
  tool CLASS [ARGS...]       run a Kafka Java main class with the cache classpath
  topics ARGS...             org.apache.kafka.tools.TopicCommand --bootstrap-server <cluster> ARGS
  console-producer TOPIC [ARGS...]
  console-consumer TOPIC [ARGS...]
                             Kafka's console tools against the running cluster
                             (or $KAFKAGUARD_KAFKA_BOOTSTRAP when set)
  help

exit status: 0 ok, 1 error, 3 status: a node is down, 69 java or mvn missing

options and environment:
  --dir DIR                     run dir (data, logs, pid files); env KAFKAGUARD_KAFKA_RUN
  KAFKAGUARD_KAFKA_CACHE        jar cache (default ~/.cache/kafkaguard/kafka)
  KAFKA_VERSION                 Kafka version from Maven Central (default 4.4.0)
  KAFKAGUARD_KAFKA_START_TIMEOUT seconds to wait for brokers (default 120)
  KAFKAGUARD_KAFKA_HEAP_OPTS    per-node heap (default -Xms128m -Xmx512m)
  KAFKAGUARD_KAFKA_JVM_OPTS     per-node JVM options (default G1, 20 ms pause goal)
  KAFKAGUARD_KAFKA_TOOL_OPTS    JVM options of `tool` and the console tools
  KAFKAGUARD_KAFKA_STOP_TIMEOUT seconds from SIGTERM to SIGKILL in stop (default 20)
  JAVA_HOME / JAVA              the Java 17+ runtime
EOF
}

# ---------------------------------------------------------------- fetch

# fetch_stamp identifies what a complete cache holds: the version and the pom.
fetch_stamp() {
	echo "kafka=$KAFKA_VERSION pom=$(sha256sum "$POM" | cut -d' ' -f1)"
}

cmd_fetch() {
	local dir="$CACHE/$KAFKA_VERSION"
	if [[ -f "$dir/.complete" && "$(cat "$dir/.complete")" == "$(fetch_stamp)" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || unavailable "mvn not found: install Maven (apt-get install -y maven)"
	mkdir -p "$dir"
	local tmp="$dir/lib.tmp.$$"
	rm -rf "$tmp"
	local log="$dir/fetch.log"
	note "fetching Apache Kafka $KAFKA_VERSION into $LIB"
	if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
		-Dkafka.version="$KAFKA_VERSION" \
		-DoutputDirectory="$tmp" -DincludeScope=runtime >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rm -rf "$tmp"
		die "fetch failed (full log: $log)"
	fi
	[[ -n "$(compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar")" ]] ||
		die "fetch: kafka_2.13-$KAFKA_VERSION.jar missing from $tmp"
	rm -rf "$LIB"
	mv "$tmp" "$LIB"
	fetch_stamp >"$dir/.complete"
}

ensure_fetched() {
	command -v "$JAVA" >/dev/null || unavailable "java not found: install a Java 17+ runtime or set JAVA_HOME"
	cmd_fetch
	write_tools_log4j
}

# ---------------------------------------------------------------- helpers

# Tools log warnings to stderr only, like Kafka's tools-log4j2 config.
write_tools_log4j() {
	local f="$CACHE/$KAFKA_VERSION/tools-log4j2.properties"
	[[ -f "$f" ]] && return 0
	cat >"$f.tmp.$$" <<'EOF'
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
	mv "$f.tmp.$$" "$f"
}

# run_java_tool CLASS ARGS... runs a Kafka main class in the foreground.
run_java_tool() {
	# shellcheck disable=SC2086
	"$JAVA" $TOOL_OPTS \
		-Dlog4j2.configurationFile="$CACHE/$KAFKA_VERSION/tools-log4j2.properties" \
		-cp "$LIB/*" "$@"
}

node_dir() { echo "$RUN/node-$1"; }

# random_cluster_id prints a Kafka Uuid as `kafka-storage random-uuid` does:
# 16 random bytes, URL-safe base64 without padding, never starting with '-'
# (saves a JVM start; the format tool still validates it).
random_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[[ "$id" != -* && "$id" != AAAAAAAAAAAAAAAAAAAAAA ]] && break
	done
	echo "$id"
}

load_state() {
	[[ -f "$RUN/cluster.env" ]] || die "no cluster in $RUN (run: $PROG start)"
	# shellcheck disable=SC1091
	source "$RUN/cluster.env"
}

node_port() { echo $((BASE_PORT + $1 - 1)); }
controller_port() { echo $((BASE_PORT + 100 + $1 - 1)); }
sasl_port() { echo $((BASE_PORT + 200 + $1 - 1)); }

# SCRAM_USER is the SCRAM-SHA-512 user start creates (with a random password).
SCRAM_USER=kafkaguard
client_config() { echo "$RUN/client-sasl-ssl.properties"; }

sasl_bootstrap_servers() { listener_list sasl_port; }

# make_security writes into $RUN/tls a throwaway CA and a broker certificate
# for 127.0.0.1 and localhost (PEM; the broker's key store holds its
# unencrypted key and certificate), picks a random password for SCRAM_USER
# (in SCRAM_PASSWORD) and writes the client properties file.
make_security() {
	local t="$RUN/tls"
	command -v openssl >/dev/null || unavailable "openssl not found: install it (apt-get install -y openssl)"
	mkdir -p "$t"
	chmod 700 "$t"
	{
		openssl req -x509 -newkey rsa:2048 -noenc -days 2 -subj "/CN=kafkaguard throwaway test CA" \
			-keyout "$t/ca.key" -out "$t/ca.pem" &&
			openssl req -newkey rsa:2048 -noenc -subj "/CN=localhost" -keyout "$t/broker.key" -out "$t/broker.csr" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$t/broker.ext" &&
			openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
				-extfile "$t/broker.ext" -out "$t/broker.crt"
	} >"$t/openssl.log" 2>&1 || {
		cat "$t/openssl.log" >&2
		die "start: making the test certificates failed"
	}
	cat "$t/broker.key" "$t/broker.crt" >"$t/broker-keystore.pem"
	SCRAM_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	cat >"$(client_config)" <<EOF
# Generated by kafkaguard integration/kafka/kafka.sh: the SASL_SSL listeners
# $(sasl_bootstrap_servers) of the test cluster in $RUN.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SCRAM_USER" password="$SCRAM_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$t/ca.pem
EOF
	chmod 600 "$(client_config)"
}

# listener_list PORT_FN prints 127.0.0.1:PORT of every node, comma-separated,
# PORT_FN giving a node's port (node_port, sasl_port).
listener_list() {
	local id out=""
	for ((id = 1; id <= NODES; id++)); do
		out+="${out:+,}127.0.0.1:$("$1" "$id")"
	done
	echo "$out"
}

bootstrap_servers() { listener_list node_port; }

# pid_alive PID succeeds while the process exists and is not a zombie.
pid_alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# node_pid ID prints the pid of a live node, or fails. The command line is
# checked so a recycled pid is never mistaken for the node.
node_pid() {
	local pidf pid
	pidf="$(node_dir "$1")/kafka.pid"
	[[ -f "$pidf" ]] || return 1
	pid=$(cat "$pidf")
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(node_dir "$1")/server.properties" || return 1
	echo "$pid"
}

check_node_id() {
	if ! [[ "$1" =~ ^[1-9][0-9]{0,3}$ ]] || (($1 > NODES)); then
		die "bad node id '$1': this cluster has nodes 1..$NODES"
	fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
	local id=$1 d
	d=$(node_dir "$id")
	echo "---- node $id: tail of $d/logs/server.log ----" >&2
	tail -n "${KAFKAGUARD_KAFKA_LOG_TAIL:-40}" "$d/logs/server.log" >&2 2>/dev/null || echo "(no server.log)" >&2
	if [[ -s "$d/stdout.log" ]]; then
		echo "---- node $id: tail of $d/stdout.log ----" >&2
		tail -n 20 "$d/stdout.log" >&2
	fi
}

# ---------------------------------------------------------------- config

write_node_config() {
	local id=$1 d voters="" i rf isr
	d=$(node_dir "$id")
	for ((i = 1; i <= NODES; i++)); do
		voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"
	done
	rf=$((NODES < 3 ? NODES : 3))
	isr=$((NODES < 2 ? NODES : 2))
	mkdir -p "$d/data" "$d/logs"
	cat >"$d/server.properties" <<EOF
# Generated by kafkaguard integration/kafka/kafka.sh for tests on loopback.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$id"),CONTROLLER://127.0.0.1:$(controller_port "$id"),SASL_SSL://127.0.0.1:$(sasl_port "$id")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$id"),SASL_SSL://127.0.0.1:$(sasl_port "$id")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL

# Clients may also connect over TLS with SCRAM-SHA-512 (see make_security).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required ;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$RUN/tls/broker-keystore.pem
log.dirs=$d/data

# Topics are created explicitly by tests, with the replication they assert on.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
unclean.leader.election.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0

# Fast failure detection for fault tests.
replica.lag.time.max.ms=5000
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000

# Small footprint: three nodes share two cores.
log.segment.bytes=1048576
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.threads=1
EOF
	if ((${#EXTRA_CONFIG[@]} > 0)); then
		printf '\n# start --config\n' >>"$d/server.properties"
		printf '%s\n' "${EXTRA_CONFIG[@]}" >>"$d/server.properties"
	fi
	cat >"$d/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $d/logs/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# ---------------------------------------------------------------- nodes

launch_node() {
	local id=$1 d pid
	d=$(node_dir "$id")
	# Readiness looks for the startup line only in what this launch logs.
	stat -c %s "$d/logs/server.log" 2>/dev/null >"$d/launch.offset" || echo 0 >"$d/launch.offset"
	# shellcheck disable=SC2086
	setsid "$JAVA" -server $HEAP_OPTS $JVM_OPTS \
		-Dlog4j2.configurationFile="$d/log4j2.properties" \
		-Dkafka.logs.dir="$d/logs" \
		-cp "$LIB/*" kafka.Kafka "$d/server.properties" \
		</dev/null >>"$d/stdout.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/kafka.pid"
}

# answering_ids prints the ids of brokers that are in the cluster metadata
# (registered and unfenced) and answered an ApiVersions request, one a line.
answering_ids() {
	run_java_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
		--bootstrap-server "$(bootstrap_servers)" 2>/dev/null |
		grep -v 'isFenced: true' |
		sed -n 's/^[^ ]* (id: \([0-9]*\) [^)]*) -> ($/\1/p' |
		sort -un
}

# logged_started ID succeeds once the node's current launch logged that its
# broker is up. It is a cheap hint, checked before the network check (a JVM).
logged_started() {
	local d off
	d=$(node_dir "$1")
	off=$(cat "$d/launch.offset" 2>/dev/null || echo 0)
	tail -c "+$((off + 1))" "$d/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started'
}

# wait_ready ID... waits until each given node answers over the network,
# failing fast when a node's process exits. Prints nothing on success.
wait_ready() {
	local want=("$@") deadline id missing answered="" logged next_probe
	deadline=$((SECONDS + START_TIMEOUT))
	next_probe=$((SECONDS + 15))
	while :; do
		logged=1
		for id in "${want[@]}"; do
			if ! node_pid "$id" >/dev/null; then
				note "node $id exited during startup"
				log_tail "$id"
				return 1
			fi
			logged_started "$id" || logged=0
		done
		# Probe when every node logged its start, or every 10 s (after the
		# first 15) regardless, in case a Kafka version words the line otherwise.
		if ((logged == 1 || SECONDS >= next_probe)); then
			next_probe=$((SECONDS + 10))
			answered=$(answering_ids || true)
			missing=()
			for id in "${want[@]}"; do
				grep -qx "$id" <<<"$answered" || missing+=("$id")
			done
			((${#missing[@]} == 0)) && return 0
		fi
		if ((SECONDS >= deadline)); then
			missing=()
			for id in "${want[@]}"; do
				grep -qx "$id" <<<"$answered" || missing+=("$id")
			done
			note "brokers ${missing[*]} did not answer within ${START_TIMEOUT}s (answering: ${answered//$'\n'/ })"
			for id in "${missing[@]}"; do log_tail "$id"; done
			return 1
		fi
		sleep 0.5
	done
}

# stop_nodes ID... sends SIGTERM, waits up to STOP_TIMEOUT, then SIGKILLs.
stop_nodes() {
	local id pid pids=() deadline
	for id in "$@"; do
		if pid=$(node_pid "$id"); then
			kill -TERM "$pid" 2>/dev/null || true
			# A paused (SIGSTOPped) node handles SIGTERM only once continued.
			kill -CONT "$pid" 2>/dev/null || true
			pids+=("$id:$pid")
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	for entry in "${pids[@]}"; do
		id=${entry%%:*}
		while node_pid "$id" >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		if pid=$(node_pid "$id"); then
			note "node $id did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while pid_alive "$pid"; do sleep 0.1; done
		fi
		rm -f "$(node_dir "$id")/kafka.pid"
	done
}

# ---------------------------------------------------------------- commands

cmd_start() {
	local nodes=1 base=19092 id cid running=() kv
	EXTRA_CONFIG=()
	while (($#)); do
		case $1 in
		--config) EXTRA_CONFIG+=("${2:?--config needs KEY=VALUE}"); shift 2 ;;
		--config=*) EXTRA_CONFIG+=("${1#*=}"); shift ;;
		--nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
		--nodes=*) nodes=${1#*=}; shift ;;
		--base-port) base=${2:?--base-port needs a value}; shift 2 ;;
		--base-port=*) base=${1#*=}; shift ;;
		--dir) RUN=${2:?--dir needs a value}; shift 2 ;;
		--dir=*) RUN=${1#*=}; shift ;;
		*) die "start: unknown argument '$1'" ;;
		esac
	done
	[[ "$nodes" == 1 || "$nodes" == 3 ]] || die "start: --nodes must be 1 or 3, got '$nodes'"
	for kv in "${EXTRA_CONFIG[@]}"; do
		[[ "$kv" =~ ^[a-z][a-z0-9._-]*=.*$ ]] || die "start: --config wants KEY=VALUE, got '$kv'"
	done
	if ! [[ "$base" =~ ^[1-9][0-9]{3,4}$ ]] || ((base < 1024 || base + 102 > 65535)); then
		die "start: --base-port must be in 1024..65433, got '$base'"
	fi

	# Already running: keep the cluster, bring back nodes that died.
	if [[ -f "$RUN/cluster.env" ]]; then
		load_state
		for ((id = 1; id <= NODES; id++)); do
			node_pid "$id" >/dev/null && running+=("$id")
		done
		if ((${#running[@]} > 0)); then
			((NODES == nodes && BASE_PORT == base)) ||
				die "start: a $NODES-node cluster on base port $BASE_PORT is running in $RUN; run '$PROG --dir $RUN stop' first"
			ensure_fetched
			for ((id = 1; id <= NODES; id++)); do
				node_pid "$id" >/dev/null || launch_node "$id"
			done
			wait_ready $(seq 1 "$NODES") || die "start: cluster in $RUN is not answering"
			echo "ready bootstrap=$(bootstrap_servers)"
			return 0
		fi
	fi

	NODES=$nodes BASE_PORT=$base
	for ((id = 1; id <= NODES; id++)); do
		for p in "$(node_port "$id")" "$(controller_port "$id")" "$(sasl_port "$id")"; do
			port_in_use "$p" && die "start: port $p on 127.0.0.1 is already in use (another cluster? try --base-port)"
		done
	done
	ensure_fetched

	# A stopped cluster is replaced by a fresh one.
	clean_run_dir
	mkdir -p "$RUN"
	cid=$(random_cluster_id)
	make_security
	local fmt=()
	for ((id = 1; id <= NODES; id++)); do
		write_node_config "$id"
		run_java_tool kafka.tools.StorageTool format --cluster-id "$cid" \
			--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
			--config "$(node_dir "$id")/server.properties" >"$(node_dir "$id")/format.log" 2>&1 &
		fmt+=($!)
	done
	for ((id = 1; id <= NODES; id++)); do
		wait "${fmt[id - 1]}" || {
			cat "$(node_dir "$id")/format.log" >&2
			die "start: formatting node $id failed"
		}
	done
	printf 'NODES=%s\nBASE_PORT=%s\nCLUSTER_ID=%s\nKAFKA_VERSION=%s\n' \
		"$NODES" "$BASE_PORT" "$cid" "$KAFKA_VERSION" >"$RUN/cluster.env"
	for ((id = 1; id <= NODES; id++)); do launch_node "$id"; done
	if ! wait_ready $(seq 1 "$NODES"); then
		stop_nodes $(seq 1 "$NODES")
		die "start: cluster did not become ready; nodes stopped, logs kept in $RUN"
	fi
	note "SASL_SSL (SCRAM-SHA-512) listeners $(sasl_bootstrap_servers); client properties $(client_config)"
	echo "ready bootstrap=$(bootstrap_servers)"
}

# clean_run_dir removes the run dir, refusing a directory that kafka.sh did
# not create (a mistyped --dir must never wipe someone's files).
clean_run_dir() {
	[[ -e "$RUN" ]] || return 0
	if [[ -f "$RUN/cluster.env" || -z "$(ls -A "$RUN")" ]]; then
		rm -rf "$RUN"
	else
		die "$RUN is not empty and holds no kafka.sh cluster; choose another --dir"
	fi
}

cmd_clean() {
	cmd_stop
	clean_run_dir
}

cmd_stop() {
	[[ -f "$RUN/cluster.env" ]] || return 0
	load_state
	stop_nodes $(seq 1 "$NODES")
}

cmd_kill() {
	local id=${1:?kill needs a NODE_ID} pid
	load_state
	check_node_id "$id"
	if pid=$(node_pid "$id"); then
		kill -KILL "$pid" 2>/dev/null || true
		while pid_alive "$pid"; do sleep 0.05; done
	fi
	rm -f "$(node_dir "$id")/kafka.pid"
}

# cmd_signal SIGNAL ID sends SIGSTOP or SIGCONT to a live node.
cmd_signal() {
	local sig=$1 id=${2:?${1#SIG} needs a NODE_ID} pid
	load_state
	check_node_id "$id"
	pid=$(node_pid "$id") || die "node $id is not running"
	kill "-$sig" "$pid"
}

cmd_restart() {
	local id=${1:?restart needs a NODE_ID} wait=1
	[[ "${2:-}" == --no-wait ]] && wait=0
	load_state
	check_node_id "$id"
	ensure_fetched
	node_pid "$id" >/dev/null || launch_node "$id"
	((wait == 0)) && return 0
	wait_ready "$id" || die "restart: node $id did not answer"
}

cmd_status() {
	local id pid down=0
	if [[ ! -f "$RUN/cluster.env" ]]; then
		echo "no cluster in $RUN"
		return 3
	fi
	load_state
	for ((id = 1; id <= NODES; id++)); do
		if pid=$(node_pid "$id"); then
			echo "node $id running pid=$pid listener=127.0.0.1:$(node_port "$id") controller=127.0.0.1:$(controller_port "$id")"
		else
			echo "node $id stopped listener=127.0.0.1:$(node_port "$id")"
			down=1
		fi
	done
	((down == 0)) || return 3
}

# target_bootstrap prints $KAFKAGUARD_KAFKA_BOOTSTRAP when set (any broker,
# e.g. kafkaguard's own), else the run dir's cluster.
target_bootstrap() {
	if [[ -n "${KAFKAGUARD_KAFKA_BOOTSTRAP:-}" ]]; then
		echo "$KAFKAGUARD_KAFKA_BOOTSTRAP"
		return
	fi
	load_state
	bootstrap_servers
}

main() {
	while (($#)); do
		case $1 in
		--dir) RUN=${2:?--dir needs a value}; shift 2 ;;
		--dir=*) RUN=${1#*=}; shift ;;
		*) break ;;
		esac
	done
	local cmd=${1:-help} bs
	(($#)) && shift
	case $cmd in
	fetch) cmd_fetch ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop ;;
	clean) cmd_clean ;;
	kill) cmd_kill "$@" ;;
	pause) cmd_signal STOP "$@" ;;
	resume) cmd_signal CONT "$@" ;;
	restart) cmd_restart "$@" ;;
	status) cmd_status ;;
	bootstrap) load_state; bootstrap_servers ;;
	sasl-bootstrap) load_state; sasl_bootstrap_servers ;;
	client-config) load_state; client_config ;;
	tool)
		(($#)) || die "tool needs a main class, e.g. org.apache.kafka.tools.VerifiableProducer"
		ensure_fetched
		run_java_tool "$@"
		;;
	topics)
		bs=$(target_bootstrap); ensure_fetched
		run_java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bs" "$@"
		;;
	console-producer)
		local topic=${1:?console-producer needs a TOPIC}; shift
		bs=$(target_bootstrap); ensure_fetched
		run_java_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$bs" --topic "$topic" "$@"
		;;
	console-consumer)
		local topic=${1:?console-consumer needs a TOPIC}; shift
		bs=$(target_bootstrap); ensure_fetched
		run_java_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$bs" --topic "$topic" "$@"
		;;
	help | -h | --help) usage ;;
	*) usage >&2; die "unknown command '$cmd'" ;;
	esac
}

main "$@"
