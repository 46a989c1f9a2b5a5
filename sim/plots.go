package sim

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots draws the report's distributions as SVG files in dir:
// latency_cdf.svg (latency against the shortest paths), delivery.svg
// (delivery ratio by second of publication), bandwidth.svg (bytes per
// node), bans.svg (time to ban each attacker) and attacker_scores.svg
// (the attackers' GossipSub scores over time). It returns the files.
func WritePlots(dir string, r Report) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		path := filepath.Join(dir, name)
		if err := p.Save(6*vg.Inch, 4*vg.Inch, path); err != nil {
			return fmt.Errorf("sim: plot %s: %w", name, err)
		}
		files = append(files, path)
		return nil
	}

	p := plot.New()
	p.Title.Text = r.Scenario + ": first-delivery latency"
	p.X.Label.Text = "ms"
	p.Y.Label.Text = "fraction of (message, receiver) pairs"
	if err := addCDF(p, r.samples.latency, "measured", color.RGBA{R: 200, A: 255}); err != nil {
		return nil, err
	}
	if err := addCDF(p, r.samples.shortest, "shortest path", color.RGBA{B: 200, A: 255}); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = false, false
	if err := save(p, "latency_cdf.svg"); err != nil {
		return nil, err
	}

	p = plot.New()
	p.Title.Text = r.Scenario + ": honest delivery by second of publication"
	p.X.Label.Text = "s after the first publish"
	p.Y.Label.Text = "delivery ratio"
	p.Y.Min, p.Y.Max = 0, 1.05
	pts := make(plotter.XYs, len(r.DeliveryOverTime))
	for i, d := range r.DeliveryOverTime {
		pts[i] = plotter.XY{X: float64(d.Second), Y: d.Ratio}
	}
	if err := addLine(p, pts, "", color.Black); err != nil {
		return nil, err
	}
	if err := save(p, "delivery.svg"); err != nil {
		return nil, err
	}

	p = plot.New()
	p.Title.Text = r.Scenario + ": GossipSub bytes per honest node"
	p.X.Label.Text = "bytes sent + received"
	p.Y.Label.Text = "nodes"
	if len(r.samples.nodeBytes) > 0 {
		h, err := plotter.NewHist(plotter.Values(r.samples.nodeBytes), 30)
		if err != nil {
			return nil, err
		}
		p.Add(h)
	}
	if err := save(p, "bandwidth.svg"); err != nil {
		return nil, err
	}

	p = plot.New()
	p.Title.Text = r.Scenario + fmt.Sprintf(": attackers banned by all neighbours (%d of %d)", r.AttackersBanned, r.Attackers)
	p.X.Label.Text = "s from the start of the attack"
	p.Y.Label.Text = "fraction of attackers"
	if err := addCDF(p, r.BanSeconds, "", color.Black); err != nil {
		return nil, err
	}
	if err := save(p, "bans.svg"); err != nil {
		return nil, err
	}

	p = plot.New()
	p.Title.Text = r.Scenario + ": GossipSub score of attackers at their honest neighbours"
	p.X.Label.Text = "s of the run"
	p.Y.Label.Text = "score"
	for i, series := range r.AttackerScores {
		mean := make(plotter.XYs, len(series.Points))
		low := make(plotter.XYs, len(series.Points))
		for j, pt := range series.Points {
			mean[j] = plotter.XY{X: float64(pt.Second), Y: pt.Mean}
			low[j] = plotter.XY{X: float64(pt.Second), Y: pt.Min}
		}
		c := plotutil.Color(i)
		if err := addLine(p, mean, series.Type+" mean", c); err != nil {
			return nil, err
		}
		l, err := plotter.NewLine(low)
		if err != nil {
			return nil, err
		}
		l.Color, l.Dashes = c, plotutil.Dashes(1)
		p.Add(l)
		p.Legend.Add(series.Type+" min", l)
	}
	if err := save(p, "attacker_scores.svg"); err != nil {
		return nil, err
	}
	return files, nil
}

// addCDF plots the empirical CDF of sorted values (at most 2000 points).
func addCDF(p *plot.Plot, sorted []float64, name string, c color.Color) error {
	if len(sorted) == 0 {
		return nil
	}
	step := max(1, len(sorted)/2000)
	var pts plotter.XYs
	for i := 0; i < len(sorted); i += step {
		pts = append(pts, plotter.XY{X: sorted[i], Y: float64(i+1) / float64(len(sorted))})
	}
	pts = append(pts, plotter.XY{X: sorted[len(sorted)-1], Y: 1})
	return addLine(p, pts, name, c)
}

func addLine(p *plot.Plot, pts plotter.XYs, name string, c color.Color) error {
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = c
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}
