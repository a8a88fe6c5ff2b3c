// Command transcode benchmarks package transcode on the shared corpus and
// prints markdown tables: image engines against vipsthumbnail (libvips-tools)
// in the same run, latency, peak RSS, the decompression bomb, bytes saved,
// and text minify+compress time. Run it through bench/transcode.sh, which
// builds it with -tags vips so both engines are measured.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/metric"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/compress"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

const bombFile = "thumbor__9643x10328.jpg"

// photos are the corpus photos of the speed runs: not the bomb, not the
// animation, line art or alpha PNG, not the CMYK file the Go engine refuses.
var photos = []string{
	"bimg__vertical.jpg", "bimg__test_exif_full.jpg", "bimg__test_exif.jpg", "bimg__northern_cardinal_bird.jpg",
	"sharp__flowers.jpeg", "sharp__gain-map.jpg", "imagor__jpg-24bit-icc-adobe-rgb.jpg", "imagor__people.jpg",
	"thumbor__Giunchedi_Filippo_January_2015_01.png", "sharp__4.webp",
}

var (
	corpusDir = flag.String("corpus", "../shared/corpus", "shared corpus directory")
	rounds    = flag.Int("rounds", 5, "rounds per speed measurement (the median is reported)")
	child     = flag.String("child", "", "internal: run one measurement in a child process (rss-go, rss-vips, bomb-go, bomb-vips, idle)")
	profile   = transcode.Profile{Name: "bench", MaxWidth: 800, Quality: 40, Formats: []image.Format{image.JPEG}, StripMetadata: true}
)

type file struct {
	name string
	data []byte
	mp   float64
	ct   string
}

func main() {
	log.SetFlags(0)
	flag.Parse()
	if *child != "" {
		runChild(*child)
		return
	}
	imgDir := filepath.Join(*corpusDir, "images")
	var files []file
	for _, n := range photos {
		files = append(files, load(imgDir, n))
	}
	engines := []image.Engine{image.GoEngine{}}
	if d := image.DefaultEngine(); d.Name() != "go" {
		engines = append(engines, d)
	}
	fmt.Printf("# transcode benchmark (%s, %d photos, %.1f MP per round, max 800 px wide, q40 JPEG, %d rounds, median)\n\n",
		time.Now().UTC().Format(time.RFC3339), len(files), totalMP(files), *rounds)

	fmt.Println("MP/s is source megapixels per wall second; MP/CPU-s per second of CPU time (user+sys), which")
	fmt.Println("shared, overloaded cores distort less. Ratios are to vipsthumbnail in the same round.")
	fmt.Println()
	fmt.Println("Latency percentiles: wall time per photo, and in brackets (1 worker only) CPU time per photo,")
	fmt.Println("which is what the wall time would be on an idle core.")
	fmt.Println()
	fmt.Println("| engine | workers | MP/s | ratio | MP/CPU-s | ratio | p50 2-6 MP | p95 >= 12 MP |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, w := range []int{1, 2} {
		vt, vtc := vipsthumbnailSpeed(imgDir, files, w)
		fmt.Printf("| vipsthumbnail | %d | %.1f | 1.00 | %.1f | 1.00 | - | - |\n", w, vt, vtc)
		for _, e := range engines {
			mps, cps, lat, cpuLat := engineSpeed(e, files, w)
			p50, p95 := pct(lat, files, 2, 6.5, 50), pct(lat, files, 12, 25, 95)
			if w == 1 {
				p50 += " (" + pct(cpuLat, files, 2, 6.5, 50) + ")"
				p95 += " (" + pct(cpuLat, files, 12, 25, 95) + ")"
			}
			fmt.Printf("| %s | %d | %.1f | %.2f | %.1f | %.2f | %s | %s |\n", e.Name(), w, mps, mps/vt, cps, cps/vtc, p50, p95)
		}
	}
	fmt.Println()

	fmt.Println("idle: a process that only starts the engine; rss-E: 2 concurrent transcodes over the photos;")
	fmt.Println("bomb-E: the 99.6 MP file (time of the Transcode call); vipsthumbnail on the bomb for comparison.")
	fmt.Println()
	fmt.Println("| child process | engine | time | peak RSS |")
	fmt.Println("|---|---|---|---|")
	for _, c := range childModes(engines) {
		wall, rss := spawn(c)
		fmt.Printf("| %s | %s | %v | %.0f MB |\n", c, strings.TrimPrefix(strings.TrimPrefix(c, "rss-"), "bomb-"), wall.Round(time.Microsecond), rss)
	}
	vtw, vtr := vipsthumbnailBomb(imgDir)
	fmt.Printf("| vipsthumbnail (decodes the bomb) | libvips | %v | %.0f MB |\n\n", vtw.Round(time.Millisecond), vtr)

	bytesSaved(imgDir, engines)
	textTable(filepath.Join(*corpusDir, "html"))
}

func load(dir, name string) file {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	info, err := image.Probe(b)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	return file{name: name, data: b, mp: float64(info.Width*info.Height) / 1e6, ct: info.Format.MIME()}
}

func totalMP(fs []file) float64 {
	s := 0.0
	for _, f := range fs {
		s += f.mp
	}
	return s
}

// engineSpeed runs rounds of the photo set through a Transcoder with w
// slots and w goroutines; it returns the median MP/s and every latency by
// file.
// With one worker it also returns each call's CPU time.
func engineSpeed(e image.Engine, files []file, w int) (float64, float64, map[string][]time.Duration, map[string][]time.Duration) {
	tr := &transcode.Transcoder{Engine: e, Limits: transcode.Limits{MaxConcurrent: w, Timeout: time.Minute}}
	lat, cpuLat := map[string][]time.Duration{}, map[string][]time.Duration{}
	var mu sync.Mutex
	var speeds, cpuSpeeds []float64
	for r := 0; r < *rounds; r++ {
		cpu0 := cpuSelf()
		jobs := make(chan file)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < w; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for f := range jobs {
					t0, c0 := time.Now(), cpuSelf()
					_, err := tr.Transcode(context.Background(), transcode.Input{Bytes: f.data, Header: http.Header{"Content-Type": {f.ct}}}, profile)
					d, c := time.Since(t0), cpuSelf()-c0
					if err != nil {
						log.Printf("%s %s: %v", e.Name(), f.name, err)
					}
					mu.Lock()
					lat[f.name] = append(lat[f.name], d)
					if w == 1 {
						cpuLat[f.name] = append(cpuLat[f.name], c)
					}
					mu.Unlock()
				}
			}()
		}
		for _, f := range files {
			jobs <- f
		}
		close(jobs)
		wg.Wait()
		speeds = append(speeds, totalMP(files)/time.Since(start).Seconds())
		cpuSpeeds = append(cpuSpeeds, totalMP(files)/(cpuSelf()-cpu0).Seconds())
	}
	return metric.Median(speeds), metric.Median(cpuSpeeds), lat, cpuLat
}

// cpuSelf returns the CPU time (user+sys) this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pct returns the p-th percentile latency over the files of lo-hi MP.
func pct(lat map[string][]time.Duration, files []file, lo, hi float64, p int) string {
	var all []time.Duration
	for _, f := range files {
		if f.mp >= lo && f.mp < hi {
			all = append(all, lat[f.name]...)
		}
	}
	if len(all) == 0 {
		return "-"
	}
	slices.Sort(all)
	return metric.Percentile(all, float64(p)/100).Round(time.Millisecond).String()
}

// vipsthumbnailSpeed runs `vipsthumbnail` on the same files with the same
// size and quality: w processes with one libvips thread each, the files
// dealt round-robin, all started at once. Median MP/s over rounds.
func vipsthumbnailSpeed(dir string, files []file, w int) (float64, float64) {
	out, err := os.MkdirTemp("", "vt")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	var speeds, cpuSpeeds []float64
	for r := 0; r < *rounds; r++ {
		cmds := make([]*exec.Cmd, w)
		for i := range cmds {
			args := []string{"-s", "800x", "-o", filepath.Join(out, "%s.jpg[Q=40,strip]")}
			for j := i; j < len(files); j += w {
				args = append(args, filepath.Join(dir, files[j].name))
			}
			cmds[i] = exec.Command("vipsthumbnail", args...)
			cmds[i].Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
		}
		start := time.Now()
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				log.Fatalf("vipsthumbnail (apt-get install libvips-tools): %v", err)
			}
		}
		var cpu time.Duration
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				log.Fatalf("vipsthumbnail: %v", err)
			}
			cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
		speeds = append(speeds, totalMP(files)/time.Since(start).Seconds())
		cpuSpeeds = append(cpuSpeeds, totalMP(files)/cpu.Seconds())
	}
	return metric.Median(speeds), metric.Median(cpuSpeeds)
}

// vipsthumbnailBomb times vipsthumbnail on the bomb and samples its VmHWM
// (peak RSS, monotonic) from /proc every 2 ms until it exits.
func vipsthumbnailBomb(dir string) (time.Duration, float64) {
	out, _ := os.MkdirTemp("", "vt")
	defer os.RemoveAll(out)
	c := exec.Command("vipsthumbnail", "-s", "800x", "-o", filepath.Join(out, "%s.jpg[Q=40,strip]"), filepath.Join(dir, bombFile))
	start := time.Now()
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	peak := 0.0
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Fatal(err)
			}
			return time.Since(start), peak
		case <-tick.C:
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Process.Pid)); err == nil {
				peak = max(peak, vmHWM(string(b)))
			}
		}
	}
}

// vmHWM returns the VmHWM line of a /proc/PID/status text in MB.
func vmHWM(status string) float64 {
	for _, l := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

func childModes(engines []image.Engine) []string {
	modes := []string{"idle"}
	for _, e := range engines {
		modes = append(modes, "rss-"+e.Name(), "bomb-"+e.Name())
	}
	return modes
}

// spawn runs this program as a child in one mode and returns its wall
// time (the transcode's own time for a bomb child), and the peak RSS it
// reports (VmHWM; getrusage's maxrss would include this parent's,
// inherited through vfork+exec).
func spawn(mode string) (time.Duration, float64) {
	c := exec.Command(os.Args[0], "-child", mode, "-corpus", *corpusDir)
	c.Stderr = os.Stderr
	start := time.Now()
	out, err := c.Output()
	if err != nil {
		log.Fatalf("child %s: %v", mode, err)
	}
	if d := elapsed(string(out)); d > 0 {
		return d, vmHWM(string(out))
	}
	return time.Since(start), vmHWM(string(out))
}

func engineByName(name string) image.Engine {
	if name == "go" {
		return image.GoEngine{}
	}
	return image.DefaultEngine()
}

// runChild: idle starts the default engine only (the RSS floor); rss-E runs
// two concurrent transcodes over the photo set twice; bomb-E transcodes the
// 99.6 MP file once and fails unless it is refused.
func runChild(mode string) {
	imgDir := filepath.Join(*corpusDir, "images")
	switch {
	case mode == "idle":
		_ = image.DefaultEngine()
	case strings.HasPrefix(mode, "rss-"):
		var files []file
		for _, n := range photos {
			files = append(files, load(imgDir, n))
		}
		tr := &transcode.Transcoder{Engine: engineByName(strings.TrimPrefix(mode, "rss-")), Limits: transcode.Limits{MaxConcurrent: 2, Timeout: time.Minute}}
		var wg sync.WaitGroup
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range files {
					f := files[(i+g*len(files)/2)%len(files)]
					tr.Transcode(context.Background(), transcode.Input{Bytes: f.data, Header: http.Header{"Content-Type": {f.ct}}}, profile)
				}
			}()
		}
		wg.Wait()
	case strings.HasPrefix(mode, "bomb-"):
		f := load(imgDir, bombFile)
		tr := &transcode.Transcoder{Engine: engineByName(strings.TrimPrefix(mode, "bomb-"))}
		t0 := time.Now()
		defer func() { fmt.Printf("Elapsed:\t%d\n", time.Since(t0)) }()
		_, err := tr.Transcode(context.Background(), transcode.Input{Bytes: f.data, Header: http.Header{"Content-Type": {f.ct}}}, profile)
		var pe *transcode.PassError
		if !asPass(err, &pe) || pe.Reason != transcode.ReasonTooManyPixels {
			log.Fatalf("bomb not refused: %v", err)
		}
	default:
		log.Fatalf("unknown child mode %q", mode)
	}
	b, _ := os.ReadFile("/proc/self/status")
	os.Stdout.Write(b)
}

// elapsed returns the Elapsed line a bomb child prints, or 0.
func elapsed(out string) time.Duration {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "Elapsed:"); ok {
			var ns int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &ns)
			return time.Duration(ns)
		}
	}
	return 0
}

func asPass(err error, pe **transcode.PassError) bool {
	p, ok := err.(*transcode.PassError)
	*pe = p
	return ok
}

// bytesSaved prints, per engine and Accept, the bytes of every corpus image
// before and after (passes count as zero saving).
func bytesSaved(dir string, engines []image.Engine) {
	ents, _ := os.ReadDir(dir)
	fmt.Println("| engine | Accept | photos >= 1 MP saved | web-size (< 1 MP) saved | all images saved | passed | larger outputs |")
	fmt.Println("|---|---|---|---|---|---|---|")
	p := profile
	p.Formats = nil // DefaultFormats: WebP where accepted, else JPEG/PNG
	p.Animation = image.AnimationKeep
	for _, e := range engines {
		for _, accept := range []string{"image/webp,*/*", "image/jpeg,*/*"} {
			tr := &transcode.Transcoder{Engine: e, Limits: transcode.Limits{Timeout: time.Minute}}
			var in, out [3]int64
			passed, larger := 0, 0
			var passes []string
			for _, ent := range ents {
				if ent.Name() == "README.md" || ent.Name() == bombFile {
					continue
				}
				f := load(dir, ent.Name())
				o, err := tr.Transcode(context.Background(), transcode.Input{Bytes: f.data, Header: http.Header{"Content-Type": {f.ct}}, Accept: accept}, p)
				n := int64(len(o.Body))
				if err != nil {
					passed++
					passes = append(passes, strings.SplitN(f.name, "__", 2)[1])
				}
				if n > int64(len(f.data)) {
					larger++
				}
				cls := 1
				if f.mp >= 1 {
					cls = 0
				}
				if !strings.HasSuffix(f.name, ".gif") && !strings.Contains(f.name, "alpha") && !strings.Contains(f.name, "50020484") {
					in[cls] += int64(len(f.data))
					out[cls] += n
				}
				in[2] += int64(len(f.data))
				out[2] += n
			}
			fmt.Printf("| %s | %s | %.1f%% | %.1f%% | %.1f%% | %d (%s) | %d |\n", e.Name(), accept,
				saved(in[0], out[0]), saved(in[1], out[1]), saved(in[2], out[2]), passed, strings.Join(passes, ", "), larger)
		}
	}
	fmt.Println()
}

func saved(in, out int64) float64 { return 100 - 100*float64(out)/float64(in) }

// textTable prints, per text file, the sizes and savings of minify with
// each coding against the raw file and against `gzip -6`, and the time of
// minify+coding normalised to a 200 KB page.
func textTable(dir string) {
	ents, _ := os.ReadDir(dir)
	fmt.Println("Times are per 200 KB of input (minify + encode through Transcode): wall median, and CPU ms in brackets.")
	fmt.Println()
	fmt.Println("| file | bytes | gzip -6 | min+gzip | min+br | min+zstd | saved vs raw (br) | saved vs gzip -6 (br) | gzip ms/200KB | br | zstd |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	var tRaw, tGz, tBr int64
	var htmlGz, htmlGzCPU []float64
	for _, ent := range ents {
		if ent.Name() == "README.md" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
		ct := map[string]string{".html": "text/html", ".css": "text/css", ".js": "application/javascript"}[filepath.Ext(ent.Name())]
		gz, err := exec.Command("gzip", "-6", "-c", filepath.Join(dir, ent.Name())).Output()
		if err != nil {
			log.Fatal(err)
		}
		var sizes [3]int
		var ms, cpums [3]float64
		for i, ce := range []string{compress.Gzip, compress.Brotli, compress.Zstd} {
			p := transcode.Profile{Minify: true, Compress: true, Encodings: []string{ce}}
			var times []float64
			n := 4 * (*rounds)
			cpu0 := cpuSelf()
			for r := 0; r < n; r++ {
				t0 := time.Now()
				o, err := transcode.Transcode(context.Background(), transcode.Input{Bytes: b, Header: http.Header{"Content-Type": {ct}}, AcceptEncoding: ce}, p, transcode.Limits{})
				times = append(times, float64(time.Since(t0).Microseconds())/1000*200e3/float64(len(b)))
				if err != nil {
					log.Fatalf("%s %s: %v", ent.Name(), ce, err)
				}
				sizes[i] = len(o.Body)
			}
			ms[i] = metric.Median(times)
			cpums[i] = float64((cpuSelf() - cpu0).Microseconds()) / 1000 / float64(n) * 200e3 / float64(len(b))
		}
		if ct == "text/html" {
			htmlGz = append(htmlGz, ms[0])
			htmlGzCPU = append(htmlGzCPU, cpums[0])
		}
		tRaw += int64(len(b))
		tGz += int64(len(gz))
		tBr += int64(sizes[1])
		fmt.Printf("| %s | %d | %d | %d | %d | %d | %.1f%% | %.1f%% | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) |\n", ent.Name(), len(b), len(gz),
			sizes[0], sizes[1], sizes[2], saved(int64(len(b)), int64(sizes[1])), saved(int64(len(gz)), int64(sizes[1])),
			ms[0], cpums[0], ms[1], cpums[1], ms[2], cpums[2])
	}
	fmt.Printf("| **all** | %d | %d | | %d | | %.1f%% | %.1f%% | HTML median %.1f (%.1f) | | |\n\n", tRaw, tGz, tBr,
		saved(tRaw, tBr), saved(tGz, tBr), metric.Median(htmlGz), metric.Median(htmlGzCPU))
}
