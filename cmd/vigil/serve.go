package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/server"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[--config FILE] [--listen ADDR] [--data-dir DIR]", stderr)
	cfgPath := fs.String("config", "", "YAML config file (optional; unknown keys are errors)")
	listen := fs.String("listen", "", "address to listen on (default 127.0.0.1:8080)")
	dataDir := fs.String("data-dir", "", "data directory, created with mode 0700 (default ./vigil-data)")
	insecureDir := fs.Bool("allow-open-data-dir", false, "start even when group or others can read the data directory (not recommended)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *insecureDir {
		cfg.AllowOpenDataDir = true
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := server.New(cfg, server.Options{AdminToken: os.Getenv("VIGIL_ADMIN_TOKEN"), Out: stdout, Log: log, Pprof: os.Getenv("VIGIL_PPROF") != ""})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the detection rules; a bad file leaves the rules in
	// force (the error is logged).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				_ = srv.ReloadRules()
			case <-ctx.Done():
				return
			}
		}
	}()
	return srv.Run(ctx)
}
