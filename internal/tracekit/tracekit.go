// Package tracekit is what the kafkaguard packages share to trace records
// with OpenTelemetry: W3C trace context (traceparent, tracestate) carried in
// Kafka record headers, and the attributes every span of a record has.
package tracekit

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of every kafkaguard tracer.
const Scope = "github.com/kafkaguard/kafkaguard"

// Attribute keys every kafkaguard package's spans use: OpenTelemetry's
// messaging ones and kafkaguard.outcome.
const (
	KeySystem      = attribute.Key("messaging.system")
	KeyOperation   = attribute.Key("messaging.operation.type")
	KeyDestination = attribute.Key("messaging.destination.name")
	KeyPartition   = attribute.Key("messaging.destination.partition.id")
	KeyOffset      = attribute.Key("messaging.kafka.offset")
	KeyOutcome     = attribute.Key("kafkaguard.outcome")
)

// Tracer returns tp's kafkaguard tracer, or nil (tracing off) for a nil tp.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(Scope)
}

// headers is a propagation.TextMapCarrier over record headers whose names
// are the propagator's keys with prefix in front.
type headers struct {
	hs     *[]kgo.RecordHeader
	prefix string
}

// Get returns the value of the last header named prefix+key.
func (c headers) Get(key string) string {
	name := c.prefix + key
	hs := *c.hs
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == name {
			return string(hs[i].Value)
		}
	}
	return ""
}

// Set replaces every header named prefix+key with one of value.
func (c headers) Set(key, value string) {
	name := c.prefix + key
	out := (*c.hs)[:0]
	for _, h := range *c.hs {
		if h.Key != name {
			out = append(out, h)
		}
	}
	*c.hs = append(out, kgo.RecordHeader{Key: name, Value: []byte(value)})
}

// Keys returns the propagator keys found among the headers.
func (c headers) Keys() []string {
	var ks []string
	for _, h := range *c.hs {
		if k, ok := strings.CutPrefix(h.Key, c.prefix); ok {
			ks = append(ks, k)
		}
	}
	return ks
}

// Inject writes the trace context of ctx's span into *hs as headers named
// prefix+"traceparent" and prefix+"tracestate", replacing earlier ones.
// It writes nothing when ctx has no valid span.
func Inject(ctx context.Context, hs *[]kgo.RecordHeader, prefix string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, headers{hs, prefix})
}

// Extract returns the span context the headers named prefix+"traceparent"
// and prefix+"tracestate" carry; it is not valid when they carry none.
func Extract(hs []kgo.RecordHeader, prefix string) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), headers{&hs, prefix})
	return trace.SpanContextFromContext(ctx)
}

// Parent returns ctx with sc as its remote parent span when sc is valid,
// and start options that make a span started from it a root otherwise, so
// that a long-lived span of ctx (a consumer's Run, say) never becomes the
// parent of every record's span.
func Parent(ctx context.Context, sc trace.SpanContext) (context.Context, []trace.SpanStartOption) {
	if sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc), nil
	}
	return ctx, []trace.SpanStartOption{trace.WithNewRoot()}
}

// RecordAttrs returns the messaging attributes of a record of topic,
// partition and offset.
func RecordAttrs(operation, topic string, partition int32, offset int64) []attribute.KeyValue {
	return []attribute.KeyValue{
		KeySystem.String("kafka"),
		KeyOperation.String(operation),
		KeyDestination.String(topic),
		KeyPartition.String(strconv.Itoa(int(partition))),
		KeyOffset.Int64(offset),
	}
}

// End ends span with err's status: an error status and the error recorded
// when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// InjectHTTP writes the trace context of ctx's span into h as the W3C
// traceparent and tracestate headers; nothing when ctx has no valid span.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// Env returns the trace context of ctx's span as environment variables,
// TRACEPARENT=... and TRACESTATE=..., as OpenTelemetry's environment-variable
// carrier names them; none when ctx has no valid span.
func Env(ctx context.Context) []string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	var env []string
	for k, v := range c {
		env = append(env, strings.ToUpper(k)+"="+v)
	}
	return env
}
