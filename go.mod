module github.com/edgeadapt/edgeadapt

go 1.26

require golang.org/x/sys v0.43.0
