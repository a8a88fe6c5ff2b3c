// Package metric holds the summary figures the tests, experiments and
// benchmark tools report: medians and nearest-rank percentiles. The
// congestion manager's figures (with Jain's index) stay in
// congestion/internal/metric, which package congestion's own tests use.
package metric
