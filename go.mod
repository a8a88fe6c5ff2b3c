module github.com/edgeadapt/edgeadapt

go 1.26.0

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	golang.org/x/net v0.62.0 // indirect
)
