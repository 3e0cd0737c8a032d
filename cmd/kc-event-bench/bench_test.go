package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCollectKeepsTheSuccessesInOrderAndStopsOnceTheContextEnds(t *testing.T) {
	errOdd := errors.New("odd")
	for _, tc := range []struct {
		name      string
		cancelAt  int // the run that ends the context; 0: none
		wantOut   []string
		wantRuns  []int
		wantError []int
	}{
		{"every item runs", 0, []string{"r2", "r4"}, []int{1, 2, 3, 4, 5}, []int{1, 3, 5}},
		{"stops after the failing run that saw the end", 3, []string{"r2"}, []int{1, 2, 3}, []int{1, 3}},
		{"a success after the end does not stop it", 2, []string{"r2"}, []int{1, 2, 3}, []int{1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var runs []int
			out, err := collect(ctx, []int{1, 2, 3, 4, 5}, func(i int) (string, error) {
				runs = append(runs, i)
				if i == tc.cancelAt {
					cancel()
				}
				if i%2 == 1 {
					return "", fmt.Errorf("run %d: %w", i, errOdd)
				}
				return fmt.Sprintf("r%d", i), nil
			})
			if !slices.Equal(out, tc.wantOut) || !slices.Equal(runs, tc.wantRuns) {
				t.Errorf("results %v after runs %v; want %v after %v", out, runs, tc.wantOut, tc.wantRuns)
			}
			var want []string
			for _, i := range tc.wantError {
				want = append(want, fmt.Sprintf("run %d: odd", i))
			}
			if err == nil || !slices.Equal(strings.Split(err.Error(), "\n"), want) || !errors.Is(err, errOdd) {
				t.Errorf("error %v; want the joined errors of runs %v", err, tc.wantError)
			}
		})
	}
}
