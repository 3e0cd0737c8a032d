package main

import (
	"context"
	"errors"
)

// The growth case: how the costs grow with the number of events, for JSON
// with block: a live run at full speed and a drain, for each of --sizes.

// growth runs JSON with block at full speed and drains, for each size.
func (b *bench) growth(ctx context.Context) error {
	s := setting{"JSON", "block", b.cfg.concurrency[0]}
	var errs []error
	for _, n := range b.cfg.sizes {
		r, err := b.live(ctx, s, n, 0)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		} else {
			b.rep.growthLive = append(b.rep.growthLive, r)
		}
		db, rate, err := b.backlogDB(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := b.drain(ctx, db, n, s)
		db.drop()
		d.insertRate = rate
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.rep.growthDrain = append(b.rep.growthDrain, d)
	}
	return errors.Join(errs...)
}
