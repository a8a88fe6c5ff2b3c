package track

// SetFast turns the decoder's fast path on or off, for tests comparing it
// with the DecodingLayerParser.
func (d *Decoder) SetFast(on bool) { d.noFast = !on }
