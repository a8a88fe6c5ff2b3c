module github.com/edgeadapt/edgeadapt

go 1.26.0

require (
	github.com/andybalholm/brotli v1.2.0
	github.com/davidbyttow/govips/v2 v2.16.0
	github.com/klauspost/compress v1.18.0
	github.com/tdewolff/minify/v2 v2.24.25
	golang.org/x/image v0.30.0
	golang.org/x/net v0.43.0
)

require (
	github.com/tdewolff/parse/v2 v2.8.20 // indirect
	golang.org/x/text v0.28.0 // indirect
)
