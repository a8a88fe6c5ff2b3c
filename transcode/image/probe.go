package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	stdimage "image"
	"image/color"
	_ "image/gif"  // register decoders for DecodeConfig
	_ "image/jpeg" // register decoders for DecodeConfig
	_ "image/png"  // register decoders for DecodeConfig

	_ "golang.org/x/image/webp" // register decoders for DecodeConfig
)

// Info is what Probe learns from an image's header without decoding pixels.
type Info struct {
	Format        Format
	Width, Height int  // stored size, before orientation
	Frames        int  // 1 unless an animated GIF or WebP
	Orientation   int  // EXIF orientation 1-8 (1 when absent)
	CMYK          bool // CMYK or YCCK JPEG
	ICC           bool // an embedded ICC profile (JPEG APP2, PNG iCCP, WebP ICCP)
	Alpha         bool // the format can carry transparency here (not proof that it does)
	LineArt       bool // palette or 1-4 bit PNG, or a GIF with at most 32 colours
}

// Pixels returns Width×Height×Frames, the figure compared with a pixel
// limit: an animation costs every frame.
func (i Info) Pixels() int64 {
	return int64(i.Width) * int64(i.Height) * int64(max(i.Frames, 1))
}

// DisplaySize returns the size as displayed: width and height swapped for
// orientations 5-8 (a quarter turn).
func (i Info) DisplaySize() (int, int) {
	if i.Orientation >= 5 && i.Orientation <= 8 {
		return i.Height, i.Width
	}
	return i.Width, i.Height
}

// ErrNotImage is returned by Probe for data that is not a JPEG, PNG, GIF or
// WebP image.
var ErrNotImage = errors.New("image: unknown or corrupt image header")

// Probe reads the image header in src.
func Probe(src []byte) (Info, error) {
	cfg, name, err := stdimage.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %dx%d", ErrNotImage, cfg.Width, cfg.Height)
	}
	info := Info{Width: cfg.Width, Height: cfg.Height, Frames: 1, Orientation: 1}
	switch name {
	case "jpeg":
		info.Format = JPEG
		info.CMYK = cfg.ColorModel == color.CMYKModel
		info.Orientation, info.ICC = scanJPEG(src)
	case "png":
		info.Format = PNG
		probePNG(src, &info)
	case "gif":
		info.Format = GIF
		info.Alpha = true // a transparent index can appear in any frame
		var colours int
		info.Frames, colours = scanGIF(src)
		info.LineArt = colours > 0 && colours <= 32
	case "webp":
		info.Format = WebP
		probeWebP(src, &info)
	default:
		return Info{}, fmt.Errorf("%w: format %s", ErrNotImage, name)
	}
	return info, nil
}

// scanJPEG walks the marker segments up to the first scan and returns the
// EXIF orientation and whether an ICC profile (APP2 "ICC_PROFILE") is
// present.
func scanJPEG(b []byte) (orientation int, icc bool) {
	orientation = 1
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return
		}
		marker := b[i+1]
		if marker == 0xff { // fill byte
			i++
			continue
		}
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return
		}
		seg := b[i+4 : i+2+n]
		switch {
		case marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")):
			if o := exifOrientation(seg[6:]); o != 0 {
				orientation = o
			}
		case marker == 0xe2 && bytes.HasPrefix(seg, []byte("ICC_PROFILE\x00")):
			icc = true
		}
		i += 2 + n
	}
	return
}

// exifOrientation returns tag 0x0112 of IFD0 in a TIFF-structured EXIF
// block, or 0 when absent or invalid.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[off:]))
	for k := int64(0); k < n; k++ {
		e := off + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		if typ := bo.Uint16(t[e+2:]); typ != 3 { // SHORT
			return 0
		}
		v := int(bo.Uint16(t[e+8:]))
		if v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// probePNG reads IHDR (bit depth, colour type) and looks for tRNS and iCCP
// chunks before the image data.
func probePNG(b []byte, info *Info) {
	if len(b) < 33 {
		return
	}
	depth, ctype := b[24], b[25]
	info.Alpha = ctype == 4 || ctype == 6
	info.LineArt = ctype == 3 || (ctype == 0 && depth < 8)
	for i := 8; i+8 <= len(b); {
		n := int64(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		switch typ {
		case "tRNS":
			info.Alpha = true
		case "iCCP":
			info.ICC = true
		case "IDAT", "IEND":
			return
		}
		next := int64(i) + 12 + n
		if next > int64(len(b)) {
			return
		}
		i = int(next)
	}
}

// probeWebP reads the VP8X header: alpha, ICC, animation. Frames are
// counted from ANMF chunks.
func probeWebP(b []byte, info *Info) {
	if len(b) < 30 || string(b[12:16]) != "VP8X" {
		info.Alpha = len(b) >= 16 && string(b[12:16]) == "VP8L"
		return
	}
	flags := b[20]
	info.Alpha = flags&0x10 != 0
	info.ICC = flags&0x20 != 0
	if flags&0x02 == 0 {
		return
	}
	frames := 0
	for i := 12; i+8 <= len(b); {
		n := int64(binary.LittleEndian.Uint32(b[i+4:]))
		if string(b[i:i+4]) == "ANMF" {
			frames++
		}
		next := int64(i) + 8 + n + n&1
		if next > int64(len(b)) {
			break
		}
		i = int(next)
	}
	info.Frames = max(frames, 1)
}

// scanGIF counts image descriptors and returns the size of the global
// colour table, without decoding LZW data.
func scanGIF(b []byte) (frames, colours int) {
	if len(b) < 13 {
		return 1, 0
	}
	i := 13
	if b[10]&0x80 != 0 {
		colours = 1 << (int(b[10]&7) + 1)
		i += 3 * colours
	}
	skipBlocks := func(i int) int {
		for i < len(b) {
			n := int(b[i])
			i++
			if n == 0 {
				return i
			}
			i += n
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then data sub-blocks
			i = skipBlocks(i + 2)
		case 0x2c: // image descriptor
			frames++
			if i+10 > len(b) {
				return max(frames, 1), colours
			}
			flags := b[i+9]
			i += 10
			if flags&0x80 != 0 {
				i += 3 << (int(flags&7) + 1)
			}
			i = skipBlocks(i + 1) // LZW minimum code size, then data
		default: // trailer or garbage
			return max(frames, 1), colours
		}
	}
	return max(frames, 1), colours
}
