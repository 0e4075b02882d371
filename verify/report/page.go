package report

import (
	"fmt"
	"html/template"
	"strconv"
	"time"
)

// pageView is what the template shows.
type pageView struct {
	Title, Command, Created string
	Runs                    []runView
	Failed                  int
}

// runView is a Run with its charts drawn.
type runView struct {
	Run
	ID       string
	Length   string
	Faults   int
	Timeline template.HTML
	// Throughput, Latency and Lag are empty when the run has no samples or
	// no lag series.
	Throughput, Latency, Lag template.HTML
	Flagged                  int // anomaly rows that are not ok
}

func build(p Page) (pageView, error) {
	v := pageView{Title: p.Title, Command: p.Command}
	if v.Title == "" {
		v.Title = "kafkaguard verify report"
	}
	if !p.Created.IsZero() {
		v.Created = p.Created.UTC().Format(time.RFC3339)
	}
	for i, r := range p.Runs {
		rv := runView{Run: r, ID: "run-" + strconv.Itoa(i+1), Faults: len(r.Faults)}
		if r.Failed {
			v.Failed++
		}
		for _, a := range r.Anomalies {
			if a.Status != StatusOK && a.Status != StatusInfo && a.Count > 0 {
				rv.Flagged++
			}
		}
		if r.Error == "" {
			if err := rv.draw(); err != nil {
				return v, fmt.Errorf("report: run %q: %w", r.Name, err)
			}
		}
		v.Runs = append(v.Runs, rv)
	}
	return v, nil
}

func (rv *runView) draw() error {
	r := rv.Run
	rv.Length = r.duration().Round(100 * time.Millisecond).String()
	pal := newPalette(r.Faults)
	var charts []*chart
	var dst []*template.HTML
	add := func(what string, fn func(Run, palette) (*chart, error), to *template.HTML) error {
		c, err := fn(r, pal)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		charts, dst = append(charts, c), append(dst, to)
		return nil
	}
	if err := add("fault timeline", timelineChart, &rv.Timeline); err != nil {
		return err
	}
	if len(r.Samples) > 0 {
		if err := add("throughput", throughputChart, &rv.Throughput); err != nil {
			return err
		}
		if err := add("latency", latencyChart, &rv.Latency); err != nil {
			return err
		}
	}
	if len(r.Lag) > 0 {
		if err := add("lag", lagChart, &rv.Lag); err != nil {
			return err
		}
	}
	svgs, err := drawAligned(charts)
	if err != nil {
		return err
	}
	for i, s := range svgs {
		*dst[i] = s
	}
	return nil
}

func pageTemplate() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
}

// pageHTML is the page: inline CSS, no scripts, nothing fetched.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", sans-serif; margin: 0 auto; max-width: 1000px; padding: 1em 1.5em 4em; color: #1b1f24; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin: 0; display: flex; gap: .6em; align-items: baseline; flex-wrap: wrap; }
code, pre { font-family: ui-monospace, "Liberation Mono", monospace; font-size: .92em; }
pre { background: #f4f5f7; padding: .5em .8em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.meta { color: #57606a; margin: 0 0 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { text-align: left; padding: .25em .7em; border-bottom: 1px solid #d8dee4; vertical-align: top; }
th { background: #f4f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-size: .8em; padding: .1em .55em; border-radius: 1em; background: #dafbe1; color: #116329; font-weight: 600; }
.verdict.failed { background: #ffebe9; color: #a40e26; }
section.run { border: 1px solid #d8dee4; border-radius: 8px; padding: 1em 1.2em; margin: 1.5em 0; }
section.run.failed { border-color: #cf222e; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1em; margin: .8em 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; }
figure.chart { margin: 1em 0; }
figure.chart figcaption { font-weight: 600; margin-bottom: .2em; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
p.note { color: #57606a; font-size: .9em; margin: .2em 0; }
tr.violation td { background: #ffebe9; }
tr.allowed td { background: #fff8c5; }
tr.info td { background: #ddf4ff; }
table.examples { margin: 0; font-size: .9em; }
table.examples th, table.examples td { padding: .1em .5em; background: transparent; }
.error { color: #a40e26; }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<p class="meta">{{len .Runs}} run{{if ne (len .Runs) 1}}s{{end}}, {{.Failed}} failed{{if .Created}} &middot; made {{.Created}}{{end}}</p>
{{- if .Command}}
<pre class="command">{{.Command}}</pre>
{{- end}}
</header>
<table class="summary">
<thead><tr><th>run</th><th>verdict</th><th>faults</th><th>anomalies</th></tr></thead>
<tbody>
{{- range .Runs}}
<tr><td><a href="#{{.ID}}">{{.Name}}</a></td><td><span class="verdict{{if .Failed}} failed{{end}}">{{.Verdict}}</span></td><td class="num">{{.Faults}}</td><td class="num">{{.Flagged}}</td></tr>
{{- end}}
</tbody>
</table>
{{range .Runs}}
<section class="run{{if .Failed}} failed{{end}}" id="{{.ID}}">
<h2><span class="name">{{.Name}}</span> <span class="verdict{{if .Failed}} failed{{end}}">{{.Verdict}}</span></h2>
<dl class="facts">
{{- if .Seed}}<dt>seed</dt><dd><code>{{.Seed}}</code></dd>{{end}}
{{- if .Replay}}<dt>replay</dt><dd><code class="replay">{{.Replay}}</code></dd>{{end}}
{{- if .Length}}<dt>length</dt><dd>{{.Length}}</dd>{{end}}
{{- range .Facts}}<dt>{{.Name}}</dt><dd>{{.Value}}</dd>{{end}}
</dl>
{{- if .Error}}
<p class="error">could not be carried out: {{.Error}}</p>
{{- else}}
<figure class="chart timeline"><figcaption>Faults over time</figcaption>
{{.Timeline}}
<p class="note">One lane per broker hit; each bar is a fault window, from the step that began it to the step that ended it. The same windows are shaded on the charts below.</p>
</figure>
{{- if .Throughput}}
<figure class="chart throughput"><figcaption>Produce throughput</figcaption>
{{.Throughput}}
</figure>
<figure class="chart latency"><figcaption>Ack latency p50 / p99</figcaption>
{{.Latency}}
<p class="note">From handing a record to the producer to its acknowledgement, per interval of acknowledgements; gaps are intervals with none.</p>
</figure>
{{- end}}
{{- if .Lag}}
<figure class="chart lag"><figcaption>Lag</figcaption>
{{.Lag}}
{{- range .Run.Lag}}{{if .Note}}
<p class="note"><b>{{.Name}}</b>: {{.Note}}</p>{{end}}{{end}}
</figure>
{{- end}}
{{- end}}
<h3>Anomalies</h3>
{{- if .Anomalies}}
<table class="anomalies">
<thead><tr><th>anomaly</th><th>count</th><th>status</th><th>examples</th></tr></thead>
<tbody>
{{- range .Anomalies}}
<tr class="{{.Status}}"><td class="anomaly">{{.Name}}</td><td class="num">{{.Count}}</td><td>{{.Status}}{{if .Note}}: {{.Note}}{{end}}</td><td>
{{- if .Examples.Rows}}
<table class="examples">
{{- if .Examples.Columns}}<thead><tr>{{range .Examples.Columns}}<th>{{.}}</th>{{end}}</tr></thead>{{end}}
<tbody>{{range .Examples.Rows}}<tr class="example">{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</tbody>
</table>
{{- end}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="note">No checker results.</p>
{{- end}}
</section>
{{end}}
</body>
</html>
`
