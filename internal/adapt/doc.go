// Package adapt is the glue between the policy (package policy, which
// decides what to do with a message) and the libraries that do it:
//
//   - Transcoder implements policy.Transcoder with package transcode,
//     mapping each policy.Profile to a transcode.Profile (Profile); as a
//     policy.ResponseTranscoder it also returns the header transcode
//     computed (Content-Length, Content-Type, Content-Encoding, a strong
//     ETag, Vary, X-Adapted), and as a policy.EarlyTranscoder it commits
//     to a header before reading a body too large to hold first;
//   - Spand implements policy.Predictor with a spand prediction source:
//     a spand.Client (the spand daemon over HTTP) or a spand.Store in
//     the same process (spand.MemoryStore), for tests and single-process
//     setups. policy.StaticPredictor remains the fixed-table predictor.
//
// Nothing here decides anything: the policy decides, transcode and spand
// measure and transform, and a failure of either makes the message pass
// unchanged (the caller, filters/icapservice, fails open).
package adapt
