// Package squidtest starts a real Squid (Debian package squid, version 5)
// on loopback for tests: a generated squid.conf with ICAP services, its own
// temporary directory for logs and the pid file, no cache, no DNS, and a
// parsed view of its icap_log. It also provides Origin, a loopback HTTP
// origin serving deterministic bodies of any size whose SHA-256 can be
// computed without holding them in memory.
//
// A test typically does
//
//	origin := squidtest.NewOrigin(t)
//	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
//		{Name: "resp", Point: squidtest.RespmodPrecache, URL: "icap://127.0.0.1:1344/respmod"},
//	}})
//	resp, err := sq.Client().Get(origin.URL(10 << 10))
//	...
//	entries := sq.WaitICAPLog(t, func(e []squidtest.ICAPLogEntry) bool { return len(e) >= 1 })
//
// Squid is killed and its directory removed in t.Cleanup. When the test
// runs as root, Squid switches to the user "proxy" (cache_effective_user),
// so its directory is created outside t.TempDir (which is mode 0700) and
// handed to that user.
//
// Start skips the test when squid is not installed, and fails it under
// CI=true (see internal/testenv).
package squidtest
