package report

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"image/color"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart sizes.
const (
	chartWidth  = 9 * vg.Inch
	chartHeight = 2.6 * vg.Inch
	laneHeight  = 0.4 * vg.Inch
	laneMargin  = 0.9 * vg.Inch // the timeline's axis, ticks and padding
)

// kindColours colour the fault kinds in order of first appearance; the
// shading of fault windows uses them with transparency.
func kindColours() []color.RGBA {
	return []color.RGBA{
		{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
		{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
		{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
		{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
		{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
		{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}, // brown
		{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, // pink
		{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, // grey
	}
}

// lineColours colour the lines of a chart, in order.
func lineColours() []color.RGBA {
	return []color.RGBA{
		{R: 0x1f, G: 0x4e, B: 0x9c, A: 0xff},
		{R: 0x17, G: 0x8a, B: 0x5a, A: 0xff},
		{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff},
		{R: 0x8e, G: 0x44, B: 0xad, A: 0xff},
	}
}

// palette maps each fault kind of a run to its colour.
type palette map[string]color.RGBA

func newPalette(spans []FaultSpan) palette {
	cs := kindColours()
	p := palette{}
	for _, s := range spans {
		if _, ok := p[s.Kind]; !ok {
			p[s.Kind] = cs[len(p)%len(cs)]
		}
	}
	return p
}

func (p palette) shade(kind string) color.RGBA {
	c := p[kind]
	// premultiplied alpha: a light wash of the kind's colour
	const a = 0x30
	return color.RGBA{R: uint8(uint32(c.R) * a / 0xff), G: uint8(uint32(c.G) * a / 0xff), B: uint8(uint32(c.B) * a / 0xff), A: a}
}

// duration returns the length of the run's time axis.
func (r Run) duration() time.Duration {
	d := r.Duration
	for _, s := range r.Samples {
		d = max(d, s.At+r.interval())
	}
	for _, s := range r.Lag {
		for _, pt := range s.Points {
			d = max(d, pt.At)
		}
	}
	for _, f := range r.Faults {
		d = max(d, f.Start, f.End)
	}
	return max(d, time.Second)
}

func (r Run) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return defaultInterval
}

// newPlot returns a plot over [0, dur] seconds in a sans-serif font.
func newPlot(dur time.Duration, yLabel string) *plot.Plot {
	p := plot.New()
	for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		f.Variant = "Sans"
	}
	p.X.Min, p.X.Max = 0, dur.Seconds()
	p.X.Label.Text = "seconds since the run started"
	p.Y.Label.Text = yLabel
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// rect returns the corners of a rectangle.
func rect(x0, x1, y0, y1 float64) plotter.XYs {
	return plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
}

// minWidth is the smallest width a fault window is drawn with, as a part
// of the time axis, so that a single step shows.
const minWidth = 0.004

func spanX(s FaultSpan, dur time.Duration) (float64, float64) {
	x0, x1 := s.Start.Seconds(), max(s.End, s.Start).Seconds()
	if w := minWidth * dur.Seconds(); x1-x0 < w {
		x1 = x0 + w
	}
	return x0, x1
}

// shadeFaults shades each fault window over [0, yMax].
func shadeFaults(p *plot.Plot, spans []FaultSpan, pal palette, dur time.Duration, yMax float64) error {
	for _, s := range spans {
		x0, x1 := spanX(s, dur)
		poly, err := plotter.NewPolygon(rect(x0, x1, 0, yMax))
		if err != nil {
			return err
		}
		poly.Color = pal.shade(s.Kind)
		poly.LineStyle.Width = 0
		p.Add(poly)
	}
	return nil
}

// chart is a plot and the height it is drawn with (all are chartWidth
// wide).
type chart struct {
	p *plot.Plot
	h vg.Length
}

// drawAligned draws the charts as SVG elements (without the XML prelude)
// whose data areas line up: each is narrowed to the data area all of them
// can have, so that a time on one is at the same place on the others.
func drawAligned(charts []*chart) ([]template.HTML, error) {
	left, right := vg.Length(0), chartWidth
	for _, c := range charts {
		da := c.p.DataCanvas(draw.New(vgsvg.New(chartWidth, c.h)))
		left, right = max(left, da.Min.X), min(right, da.Max.X)
	}
	out := make([]template.HTML, len(charts))
	for i, c := range charts {
		vc := vgsvg.New(chartWidth, c.h)
		dc := draw.New(vc)
		da := c.p.DataCanvas(dc)
		c.p.Draw(draw.Crop(dc, left-da.Min.X, right-da.Max.X, 0, 0))
		var buf bytes.Buffer
		if _, err := vc.WriteTo(&buf); err != nil {
			return nil, err
		}
		s := buf.String()
		j := strings.Index(s, "<svg ")
		if j < 0 {
			return nil, fmt.Errorf("report: the plot drew no <svg> element")
		}
		// gonum's own output, whose text went through html.EscapeString.
		out[i] = template.HTML(`<svg role="img" ` + s[j+len("<svg "):])
	}
	return out, nil
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("5000", not "5000.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// lanes returns the timeline's lanes: one per broker hit, in id order,
// and "cluster" for faults that hit no broker in particular.
func lanes(spans []FaultSpan) []string {
	var ids []int32
	cluster := false
	for _, s := range spans {
		if len(s.Brokers) == 0 {
			cluster = true
		}
		ids = append(ids, s.Brokers...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []string
	for _, id := range ids {
		out = append(out, laneName(id))
	}
	if cluster {
		out = append(out, "cluster")
	}
	return out
}

func laneName(id int32) string { return "broker " + strconv.Itoa(int(id)) }

// timelineChart draws one lane per broker with a bar per fault window,
// coloured and labelled by its kind.
func timelineChart(r Run, pal palette) (*chart, error) {
	dur := r.duration()
	names := lanes(r.Faults)
	if len(names) == 0 {
		names = []string{"(no faults)"}
	}
	lane := map[string]int{}
	var ticks []plot.Tick
	for i, n := range names {
		y := float64(len(names) - 1 - i) // the first lane on top
		lane[n] = int(y)
		ticks = append(ticks, plot.Tick{Value: y + 0.5, Label: n})
	}
	p := newPlot(dur, "")
	p.Y.Min, p.Y.Max = 0, float64(len(names))
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Length = 0
	var labels plotter.XYLabels
	for _, s := range r.Faults {
		targets := make([]string, 0, len(s.Brokers))
		for _, id := range s.Brokers {
			targets = append(targets, laneName(id))
		}
		if len(targets) == 0 {
			targets = []string{"cluster"}
		}
		for _, t := range targets {
			y := float64(lane[t])
			x0, x1 := spanX(s, dur)
			poly, err := plotter.NewPolygon(rect(x0, x1, y+0.15, y+0.85))
			if err != nil {
				return nil, err
			}
			poly.Color = pal[s.Kind]
			poly.LineStyle.Width = 0
			p.Add(poly)
			labels.XYs = append(labels.XYs, plotter.XY{X: x0, Y: y + 0.5})
			labels.Labels = append(labels.Labels, s.Kind)
		}
	}
	if len(labels.Labels) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Variant = "Sans"
			l.TextStyle[i].Font.Size = vg.Points(9)
			l.TextStyle[i].YAlign = text.YCenter
		}
		l.Offset = vg.Point{X: vg.Points(3)}
		p.Add(l)
	}
	return &chart{p: p, h: laneMargin + vg.Length(len(names))*laneHeight}, nil
}

// addLine adds a line through each segment, named once in the legend,
// with a dot at each point so that a lone point shows.
func addLine(p *plot.Plot, name string, c color.RGBA, segments []plotter.XYs, dashed bool) error {
	first := true
	for _, seg := range segments {
		if len(seg) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(seg)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		s.Color, s.Radius, s.Shape = c, vg.Points(1.2), draw.CircleGlyph{}
		p.Add(l, s)
		if first {
			p.Legend.Add(name, l)
			first = false
		}
	}
	return nil
}

// yTop returns the top of a chart's y axis for data up to m, with room
// for the legend.
func yTop(m float64) float64 {
	if m <= 0 {
		return 1
	}
	return m * 1.3
}

// throughputChart draws records sent, acknowledged and failed per second.
func throughputChart(r Run, pal palette) (*chart, error) {
	dur, iv := r.duration(), r.interval()
	per := 1 / iv.Seconds()
	var sent, acked, failed plotter.XYs
	anyFailed := false
	m := 0.0
	for _, s := range r.Samples {
		x := (s.At + iv/2).Seconds()
		sent = append(sent, plotter.XY{X: x, Y: float64(s.Sent) * per})
		acked = append(acked, plotter.XY{X: x, Y: float64(s.Acked) * per})
		failed = append(failed, plotter.XY{X: x, Y: float64(s.Failed) * per})
		anyFailed = anyFailed || s.Failed > 0
		m = max(m, float64(s.Sent)*per, float64(s.Acked)*per, float64(s.Failed)*per)
	}
	p := newPlot(dur, "records per second")
	p.Y.Min, p.Y.Max = 0, yTop(m)
	if err := shadeFaults(p, r.Faults, pal, dur, p.Y.Max); err != nil {
		return nil, err
	}
	cs := lineColours()
	if err := addLine(p, "sent", cs[0], []plotter.XYs{sent}, true); err != nil {
		return nil, err
	}
	if err := addLine(p, "acknowledged", cs[1], []plotter.XYs{acked}, false); err != nil {
		return nil, err
	}
	if anyFailed {
		if err := addLine(p, "failed", cs[2], []plotter.XYs{failed}, false); err != nil {
			return nil, err
		}
	}
	return &chart{p: p, h: chartHeight}, nil
}

// latencyChart draws the ack latency's p50 and p99 per interval, in
// milliseconds; intervals without acknowledgements leave a gap.
func latencyChart(r Run, pal palette) (*chart, error) {
	dur, iv := r.duration(), r.interval()
	var p50, p99 []plotter.XYs
	var cur50, cur99 plotter.XYs
	m := 0.0
	for _, s := range r.Samples {
		if s.P50 <= 0 && s.P99 <= 0 {
			p50, p99 = append(p50, cur50), append(p99, cur99)
			cur50, cur99 = nil, nil
			continue
		}
		x := (s.At + iv/2).Seconds()
		ms50, ms99 := ms(s.P50), ms(s.P99)
		cur50 = append(cur50, plotter.XY{X: x, Y: ms50})
		cur99 = append(cur99, plotter.XY{X: x, Y: ms99})
		m = max(m, ms50, ms99)
	}
	p50, p99 = append(p50, cur50), append(p99, cur99)
	p := newPlot(dur, "ack latency (ms)")
	p.Y.Min, p.Y.Max = 0, yTop(m)
	if err := shadeFaults(p, r.Faults, pal, dur, p.Y.Max); err != nil {
		return nil, err
	}
	cs := lineColours()
	if err := addLine(p, "p50", cs[0], p50, false); err != nil {
		return nil, err
	}
	if err := addLine(p, "p99", cs[2], p99, false); err != nil {
		return nil, err
	}
	return &chart{p: p, h: chartHeight}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// gapFactor: points of a series further apart than this many intervals are
// not joined.
const gapFactor = 5

// lagChart draws each lag series, split where points are missing.
func lagChart(r Run, pal palette) (*chart, error) {
	dur, iv := r.duration(), r.interval()
	p := newPlot(dur, "records")
	m := 0.0
	for _, s := range r.Lag {
		for _, pt := range s.Points {
			m = max(m, pt.Value)
		}
	}
	p.Y.Min, p.Y.Max = 0, yTop(m)
	if err := shadeFaults(p, r.Faults, pal, dur, p.Y.Max); err != nil {
		return nil, err
	}
	cs := lineColours()
	for i, s := range r.Lag {
		pts := slices.SortedStableFunc(slices.Values(s.Points), func(a, b Point) int { return cmp.Compare(a.At, b.At) })
		var segs []plotter.XYs
		var cur plotter.XYs
		for j, pt := range pts {
			if j > 0 && pt.At-pts[j-1].At > gapFactor*iv {
				segs, cur = append(segs, cur), nil
			}
			cur = append(cur, plotter.XY{X: pt.At.Seconds(), Y: pt.Value})
		}
		segs = append(segs, cur)
		if err := addLine(p, s.Name, cs[i%len(cs)], segs, false); err != nil {
			return nil, err
		}
	}
	return &chart{p: p, h: chartHeight}, nil
}
