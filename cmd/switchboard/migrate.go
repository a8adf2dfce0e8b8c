package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/switchboard-health/switchboard/internal/database"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "migrate up|down|status|reset [--yes]\n\n  up      apply every pending migration\n  down    roll back the newest migration\n  status  list migrations and whether they are applied\n  reset   roll back every migration and apply them again (destroys data; needs --yes)", stdout)
	yes := fs.Bool("yes", false, "confirm a destructive reset")
	if len(args) == 0 {
		fs.Usage()
		return usageError{"migrate needs up, down, status or reset"}
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fs.Usage()
		return errHelp
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var b base
	if err := load(ctx, &b); err != nil {
		return err
	}
	if b.DatabaseURL == "" {
		return usageError{"DATABASE_URL is not set"}
	}
	logger, err := newLogger(b.Log, stderr)
	if err != nil {
		return err
	}
	switch sub {
	case "up":
		v, err := database.Migrate(ctx, b.DatabaseURL, database.Up, logger)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", len(v))
	case "down":
		v, err := database.Migrate(ctx, b.DatabaseURL, database.Down, logger)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %v\n", v)
	case "reset":
		if !*yes {
			return usageError{"migrate reset destroys every Switchboard table; add --yes to confirm"}
		}
		st, err := database.Status(ctx, b.DatabaseURL)
		if err != nil {
			return err
		}
		for _, s := range st {
			if !s.Applied {
				continue
			}
			if _, err := database.Migrate(ctx, b.DatabaseURL, database.Down, logger); err != nil {
				return err
			}
		}
		v, err := database.Migrate(ctx, b.DatabaseURL, database.Up, logger)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reset: applied %d migration(s)\n", len(v))
	case "status":
		st, err := database.Status(ctx, b.DatabaseURL)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tAPPLIED\tFILE")
		for _, s := range st {
			at := "pending"
			if s.Applied {
				at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, at, s.Name)
		}
		return tw.Flush()
	default:
		fs.Usage()
		return usageError{fmt.Sprintf("unknown migrate command %q", sub)}
	}
	return nil
}
