package loadgen

import (
	"math"
	"time"
)

// Histogram counts durations in logarithmic buckets 2% wide, from 1 ns to
// beyond a minute.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
}

const (
	histGrowth  = 1.02
	histBuckets = 1600 // 1.02^1600 ns ≈ 5.6e13 ns
)

var logGrowth = math.Log(histGrowth)

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	i := 0
	if d > 1 {
		i = int(math.Log(float64(d)) / logGrowth)
	}
	if i >= histBuckets {
		i = histBuckets - 1
	}
	h.counts[i]++
	h.n++
}

// Add merges o into h.
func (h *Histogram) Add(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 < q ≤ 1), to within 2%; zero if empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			// The geometric middle of the bucket.
			return time.Duration(math.Pow(histGrowth, float64(i)+0.5))
		}
	}
	return time.Duration(math.Pow(histGrowth, histBuckets))
}
