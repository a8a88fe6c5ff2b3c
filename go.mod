module github.com/edgeadapt/edgeadapt

go 1.26.0

require (
	github.com/gopacket/gopacket v1.7.7
	github.com/redis/go-redis/v9 v9.23.0
	golang.org/x/net v0.62.0
)

require github.com/elazarl/goproxy v1.9.2

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/andybalholm/brotli v1.2.0
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/davidbyttow/govips/v2 v2.16.0
	github.com/klauspost/compress v1.18.0
	github.com/tdewolff/minify/v2 v2.24.25
	github.com/tdewolff/parse/v2 v2.8.20 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/image v0.30.0
	golang.org/x/sys v0.49.0
	golang.org/x/text v0.43.0 // indirect
)
