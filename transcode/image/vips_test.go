//go:build vips

package image

func init() { testEngines = append(testEngines, NewVipsEngine(0)) }
