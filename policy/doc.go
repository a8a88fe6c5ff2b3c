// Package policy loads policy.toml, validates it, and turns an ICAP
// message plus what is known about the client's network into a Decision:
// pass (ICAP 204), block, redirect, edit headers, rewrite the request
// URL, or transcode with a named profile. It is the "who, when and why" of the adaptation proxy;
// the ICAP protocol (package icap) is the "how", and policy does not
// import it: icapd builds a Message from the encapsulated HTTP messages,
// asks Decide, and applies the Decision.
//
// # Evaluation
//
// Rules are tried in order, and the first whose every condition matches
// decides; a message no rule matches passes. A rule's optional priority
// moves it ahead of rules with a lower one (stable: equal priorities keep
// file order). Decide does not scan every rule: rules are indexed by the
// hosts and domains they name and by the first path segment their path
// globs fix, and the few candidate lists are merged in rule order, so the
// result is the linear scan's (TestIndexMatchesLinear) at a fraction of
// the cost (BenchmarkDecide).
//
// # The client's network
//
// A rule with a bandwidth, throughput or RTT condition makes Decide
// classify the client, once per message: Save-Data, then the Downlink,
// RTT and ECT client hints, then a Predictor (spand's measurements for
// the X-Client-IP address), else the class is "unknown". Decision.Vary
// lists the request headers read, for the Vary field of changed
// responses.
//
// # Never transform
//
// A Transcode decision becomes a Pass (with Decision.Skipped saying why)
// for REQMOD, for a response or request with Cache-Control: no-transform,
// for partial responses (206, Content-Range), and for a content type none
// of the profile's sections handles.
//
// # Validation and reload
//
// Parse and LoadFile are strict: every unknown key, wrong type, dangling
// name, bad pattern or unreachable rule is an *Error with file, line and
// key, all reported at once. Holder keeps the policy in force, swaps it
// atomically on Reload (SIGHUP) or when Watch sees the file change, keeps
// the old one when the new file is bad, and gives every successful load a
// new Version (≤ 32 bytes) for the ICAP ISTag.
//
// # Limits
//
// A policy file is at most DefaultMaxFileBytes and DefaultMaxRules rules;
// block lists and the block page have their own limits (see filters).
package policy
