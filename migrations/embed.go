// Package migrations holds Switchboard's goose SQL migrations, River's schema
// included, embedded in the binary.
//
// The files are plain goose SQL, so the goose CLI runs them too:
//
//	goose -dir migrations -table switchboard_goose_db_version postgres "$DATABASE_URL" up
package migrations

import "embed"

// FS holds every migration file, named NNNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS

// TableName is the goose version table. It is not goose's default so that an
// app sharing the database can keep its own goose history.
const TableName = "switchboard_goose_db_version"
