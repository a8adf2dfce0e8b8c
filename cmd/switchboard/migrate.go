package main

import (
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/switchboard-health/switchboard/internal/database"
)

// migrateCmd is `switchboard migrate`.
type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" help:"Apply every pending migration."`
	Down   migrateDownCmd   `cmd:"" help:"Roll back the newest migration."`
	Status migrateStatusCmd `cmd:"" help:"List migrations and whether they are applied."`
	Reset  migrateResetCmd  `cmd:"" help:"Roll back every migration and apply them again (destroys data; needs --yes)."`
}

func (migrateCmd) Help() string {
	return `Migrations are goose's (table switchboard_goose_db_version), embedded in the
binary; goose's own CLI on the migrations/ directory agrees.`
}

// migrateEnv reads DATABASE_URL, DATABASE_POOL_MODE and the log settings.
func migrateEnv(e *env) (database.Config, *slog.Logger, error) {
	var b base
	if err := load(e.ctx, &b); err != nil {
		return database.Config{}, nil, err
	}
	if b.DatabaseURL == "" {
		return database.Config{}, nil, usageError{msg: "DATABASE_URL is not set"}
	}
	logger, err := newLogger(b.Log, e.stderr)
	return b.database(), logger, err
}

type migrateUpCmd struct{}

func (migrateUpCmd) Run(e *env) error {
	db, logger, err := migrateEnv(e)
	if err != nil {
		return err
	}
	v, err := database.Migrate(e.ctx, db, database.Up, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "applied %d migration(s)\n", len(v))
	return nil
}

type migrateDownCmd struct{}

func (migrateDownCmd) Run(e *env) error {
	db, logger, err := migrateEnv(e)
	if err != nil {
		return err
	}
	v, err := database.Migrate(e.ctx, db, database.Down, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rolled back %v\n", v)
	return nil
}

type migrateStatusCmd struct{}

func (migrateStatusCmd) Run(e *env) error {
	db, _, err := migrateEnv(e)
	if err != nil {
		return err
	}
	st, err := database.Status(e.ctx, db)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAPPLIED\tFILE")
	for _, s := range st {
		at := "pending"
		if s.Applied {
			at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, at, s.Name)
	}
	return tw.Flush()
}

type migrateResetCmd struct {
	Yes bool `help:"Confirm: every Switchboard table is dropped and created again."`
}

func (c *migrateResetCmd) Validate() error {
	if !c.Yes {
		return fmt.Errorf("migrate reset destroys every Switchboard table; add --yes to confirm")
	}
	return nil
}

func (c *migrateResetCmd) Run(e *env) error {
	db, logger, err := migrateEnv(e)
	if err != nil {
		return err
	}
	st, err := database.Status(e.ctx, db)
	if err != nil {
		return err
	}
	for _, s := range st {
		if !s.Applied {
			continue
		}
		if _, err := database.Migrate(e.ctx, db, database.Down, logger); err != nil {
			return err
		}
	}
	v, err := database.Migrate(e.ctx, db, database.Up, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "reset: applied %d migration(s)\n", len(v))
	return nil
}
