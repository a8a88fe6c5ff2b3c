// Package track decodes captured packets and follows TCP connections (and
// UDP flows) on their headers alone, producing one Conn record per
// connection with tcptrace-compatible per-direction metrics.
//
// Documentation of the metrics, the connection table limits and the
// application classes is completed as the implementation lands.
package track
