package main

import (
	"context"
	"errors"
	"fmt"
)

// The limit case: plain load generators POST a body the emitter sent to the
// same receiver; the emitter's events/s are compared with their requests/s.

// limitResult is one load generator's rate, for the format and
// concurrency of setting.
type limitResult struct {
	setting
	body int
	gen  loadResult
	load float64
}

// limit runs the load generators with a body the emitter sent, per format
// and concurrency, with as many connections as the emitter had requests in
// flight.
func (b *bench) limit(ctx context.Context) error {
	var errs []error
	for _, c := range b.cfg.concurrency {
		for _, f := range b.cfg.formats {
			s := setting{f, "block", c}
			body := b.bodies[f]
			if body == nil || b.rep.best(s.key()) == 0 {
				// No run delivered this yet: a short one for a body and a rate.
				r, err := b.live(ctx, s, 2000, 0)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				b.rep.live = append(b.rep.live, r)
				if body = b.bodies[f]; body == nil {
					errs = append(errs, fmt.Errorf("%s: no LOGIN body arrived", f))
					continue
				}
			}
			dir, err := b.runDir()
			if err != nil {
				return err
			}
			for _, gen := range []func() (loadResult, error){
				func() (loadResult, error) {
					return wrkLoad(ctx, b.recv.url(), benchPassword, body, c, b.cfg.limitSeconds, dir)
				},
				func() (loadResult, error) {
					return goLoad(ctx, b.recv.url(), benchPassword, body, c, b.cfg.limitSeconds)
				},
			} {
				b.progress("limit %s: load generator running for %s", s.key(), b.cfg.limitSeconds)
				r, err := gen()
				if err != nil {
					errs = append(errs, err)
					continue
				}
				lr := limitResult{setting: s, body: len(body), gen: r, load: b.host.loadAverage()}
				b.rep.limit = append(b.rep.limit, lr)
				b.done("limit %s %s: %.0f requests/s, load %.1f", s.key(), r.tool, r.rate(), lr.load)
			}
		}
	}
	return errors.Join(errs...)
}
