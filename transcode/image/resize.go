package image

import (
	stdimage "image"
	"image/color"

	"golang.org/x/image/draw"
)

// resize scales src to w×h. A large reduction first averages k×k blocks
// (a box filter: fast, and it removes the aliasing that CatmullRom alone
// would need a wide kernel for), then CatmullRom does the residual factor
// of less than 2. YCbCr, Gray and (N)RGBA sources are box-filtered plane by
// plane without conversion.
func resize(src stdimage.Image, w, h int) *stdimage.RGBA {
	sb := src.Bounds()
	k := min(sb.Dx()/w, sb.Dy()/h)
	if k >= 2 {
		src = boxShrink(src, k)
	}
	dst := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	if src.Bounds().Size() == dst.Rect.Size() {
		draw.Draw(dst, dst.Rect, src, src.Bounds().Min, draw.Src)
		return dst
	}
	draw.CatmullRom.Scale(dst, dst.Rect, src, src.Bounds(), draw.Src, nil)
	return dst
}

// boxShrink returns src reduced by the integer factor k, each output pixel
// the mean of a k×k block (partial blocks at the right and bottom edges are
// averaged over the pixels they have).
func boxShrink(src stdimage.Image, k int) stdimage.Image {
	b := src.Bounds()
	dw, dh := ceilDiv(b.Dx(), k), ceilDiv(b.Dy(), k)
	switch s := src.(type) {
	case *stdimage.YCbCr:
		d := stdimage.NewYCbCr(stdimage.Rect(0, 0, dw, dh), s.SubsampleRatio)
		boxPlane(d.Y, d.YStride, dw, dh, s.Y[s.YOffset(b.Min.X, b.Min.Y):], s.YStride, b.Dx(), b.Dy(), 1, k)
		scw, sch := chromaSize(b.Dx(), b.Dy(), s.SubsampleRatio)
		dcw, dch := chromaSize(dw, dh, s.SubsampleRatio)
		co := s.COffset(b.Min.X, b.Min.Y)
		boxPlane(d.Cb, d.CStride, dcw, dch, s.Cb[co:], s.CStride, scw, sch, 1, k)
		boxPlane(d.Cr, d.CStride, dcw, dch, s.Cr[co:], s.CStride, scw, sch, 1, k)
		return d
	case *stdimage.Gray:
		d := stdimage.NewGray(stdimage.Rect(0, 0, dw, dh))
		boxPlane(d.Pix, d.Stride, dw, dh, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, b.Dx(), b.Dy(), 1, k)
		return d
	case *stdimage.RGBA:
		d := stdimage.NewRGBA(stdimage.Rect(0, 0, dw, dh))
		boxPlane(d.Pix, d.Stride, dw, dh, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, b.Dx(), b.Dy(), 4, k)
		return d
	case *stdimage.NRGBA:
		// Premultiply first so that the colour of transparent pixels
		// does not bleed into their neighbours.
		rgba := stdimage.NewRGBA(b)
		draw.Draw(rgba, b, s, b.Min, draw.Src)
		return boxShrink(rgba, k)
	default:
		rgba := stdimage.NewRGBA(stdimage.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Rect, src, b.Min, draw.Src)
		return boxShrink(rgba, k)
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// chromaSize returns the chroma plane size of a w×h YCbCr image.
func chromaSize(w, h int, r stdimage.YCbCrSubsampleRatio) (int, int) {
	switch r {
	case stdimage.YCbCrSubsampleRatio422:
		return ceilDiv(w, 2), h
	case stdimage.YCbCrSubsampleRatio420:
		return ceilDiv(w, 2), ceilDiv(h, 2)
	case stdimage.YCbCrSubsampleRatio440:
		return w, ceilDiv(h, 2)
	case stdimage.YCbCrSubsampleRatio411:
		return ceilDiv(w, 4), h
	case stdimage.YCbCrSubsampleRatio410:
		return ceilDiv(w, 4), ceilDiv(h, 2)
	}
	return w, h
}

// boxPlane averages k×k blocks of an interleaved plane with ch channels
// (sw×sh pixels) into dst (dw×dh pixels). Output cells whose block starts
// beyond the source (possible in chroma planes) repeat the last source
// row or column.
func boxPlane(dst []uint8, dstride, dw, dh int, src []uint8, sstride, sw, sh, ch, k int) {
	acc := make([]uint32, dw*ch)
	for oy := 0; oy < dh; oy++ {
		y0 := min(oy*k, sh-1)
		y1 := min(y0+k, sh)
		clear(acc)
		for y := y0; y < y1; y++ {
			row := src[y*sstride : y*sstride+sw*ch]
			if ch == 1 { // luma and grey planes: the hot path
				for ox := 0; ox < dw; ox++ {
					x0 := min(ox*k, sw-1)
					var sum uint32
					for _, v := range row[x0:min(x0+k, sw)] {
						sum += uint32(v)
					}
					acc[ox] += sum
				}
				continue
			}
			for ox := 0; ox < dw; ox++ {
				x0 := min(ox*k, sw-1)
				x1 := min(x0+k, sw)
				a := acc[ox*ch : ox*ch+ch]
				seg := row[x0*ch : x1*ch]
				for i := 0; i < len(seg); i += ch {
					for c := 0; c < ch; c++ {
						a[c] += uint32(seg[i+c])
					}
				}
			}
		}
		out := dst[oy*dstride : oy*dstride+dw*ch]
		rows := uint32(y1 - y0)
		for ox := 0; ox < dw; ox++ {
			x0 := min(ox*k, sw-1)
			n := rows * uint32(min(x0+k, sw)-x0)
			for c := 0; c < ch; c++ {
				out[ox*ch+c] = uint8((acc[ox*ch+c] + n/2) / n)
			}
		}
	}
}

// orient applies an EXIF orientation (2-8) to m, returning a new image;
// 1 and unknown values return m itself.
func orient(m *stdimage.RGBA, o int) *stdimage.RGBA {
	if o < 2 || o > 8 {
		return m
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	d := stdimage.NewRGBA(stdimage.Rect(0, 0, dw, dh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch o {
			case 2: // mirrored horizontally
				dx, dy = w-1-x, y
			case 3: // rotated 180
				dx, dy = w-1-x, h-1-y
			case 4: // mirrored vertically
				dx, dy = x, h-1-y
			case 5: // transposed
				dx, dy = y, x
			case 6: // rotated 90 clockwise
				dx, dy = h-1-y, x
			case 7: // transversed
				dx, dy = h-1-y, w-1-x
			case 8: // rotated 90 counter-clockwise
				dx, dy = y, w-1-x
			}
			si, di := m.PixOffset(x, y), d.PixOffset(dx, dy)
			copy(d.Pix[di:di+4], m.Pix[si:si+4])
		}
	}
	return d
}

// opaque reports whether every pixel of m has full alpha.
func opaque(m *stdimage.RGBA) bool {
	for i := 3; i < len(m.Pix); i += 4 {
		if m.Pix[i] != 0xff {
			return false
		}
	}
	return true
}

// toGray converts m to 8-bit grey (BT.601 luma, as color.GrayModel).
func toGray(m *stdimage.RGBA) *stdimage.Gray {
	g := stdimage.NewGray(m.Rect)
	for i, j := 0, 0; i < len(m.Pix); i, j = i+4, j+1 {
		g.Pix[j] = color.GrayModel.Convert(color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff}).(color.Gray).Y
	}
	return g
}

// isGrey reports whether every pixel of m has equal R, G and B, so it can
// be stored as grey without loss.
func isGrey(m *stdimage.RGBA) bool {
	for i := 0; i < len(m.Pix); i += 4 {
		if m.Pix[i] != m.Pix[i+1] || m.Pix[i] != m.Pix[i+2] {
			return false
		}
	}
	return true
}
