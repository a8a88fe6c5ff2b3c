module github.com/edgeadapt/edgeadapt

go 1.26
