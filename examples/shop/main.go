// Command shop is a small web shop wired with Vigil's Go SDK: every request it
// serves and makes, logins, settings changes, a background job and its logs
// are sent to Vigil. See README.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address the shop listens on")
	vigilURL := flag.String("vigil", cmp.Or(os.Getenv("VIGIL_URL"), "http://127.0.0.1:8080"), "Vigil base URL (env VIGIL_URL)")
	spool := flag.String("spool", "./shop-spool", "spool directory for events Vigil has not acknowledged yet")
	jobEvery := flag.Duration("job-every", 30*time.Second, "period of the send-newsletter job")
	rate := flag.Int("rate", 20, "requests allowed per minute from one IP address")
	followBans := flag.Bool("follow-bans", true, "refuse the addresses and users Vigil bans (follows Vigil's decision stream)")
	flag.Parse()

	token := os.Getenv("VIGIL_TOKEN")
	if token == "" {
		log.Print("warning: VIGIL_TOKEN is empty; Vigil will refuse the events (they wait in the spool)")
	}
	h, closeFn, err := newShop(shopConfig{
		VigilURL:   *vigilURL,
		Token:      token,
		SpoolDir:   *spool,
		JobEvery:   *jobEvery,
		RateLimit:  *rate,
		Log:        os.Stderr,
		FollowBans: *followBans,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("shop listening", "addr", "http://"+*listen, "vigil", *vigilURL)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err := closeFn(shutdown); err != nil {
		log.Printf("closing the Vigil client: %v", err)
	}
}
