package main

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

// No Docker engine runs here: these tests check what can be checked without
// one — the compose file parses, names files that exist, wires the services
// as documented, and sets only variables the binary reads.

const repoRoot = "../.."

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command []string `yaml:"command"`
	EnvFile []struct {
		Path     string `yaml:"path"`
		Required *bool  `yaml:"required"`
	} `yaml:"env_file"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Deploy  *struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Restart string `yaml:"restart"`
}

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var f struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f), "docker-compose.yml parses")
	return f.Services
}

// envFile reads deploy/.env.example: the variables set, the optional ones
// shown commented out, and whether each set one has a comment above it.
func envFile(t *testing.T) (set map[string]string, optional []string, undocumented []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "deploy", ".env.example"))
	require.NoError(t, err)
	defer f.Close()
	set = map[string]string{}
	assign := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
	commented := regexp.MustCompile(`^# ([A-Z][A-Z0-9_]*)=`)
	prev := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := assign.FindStringSubmatch(line); m != nil {
			set[m[1]] = m[2]
			if !strings.HasPrefix(prev, "#") {
				undocumented = append(undocumented, m[1])
			}
		} else if m := commented.FindStringSubmatch(line); m != nil {
			optional = append(optional, m[1])
		} else if line != "" && !strings.HasPrefix(line, "#") {
			t.Errorf(".env.example: line %q is neither a comment nor KEY=value", line)
		}
		prev = line
	}
	require.NoError(t, sc.Err())
	return set, optional, undocumented
}

// readVariables lists every environment variable the binary reads: the
// env tags of each command's configuration, the per-destination resilience
// settings (DEST_<NAME>_*), and the few read directly.
func readVariables() map[string]bool {
	vars := map[string]bool{"SWITCHBOARD_ACTOR": true}
	var walk func(reflect.Type, string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("env")
			if !ok {
				walk(f.Type, prefix)
				continue
			}
			if name, _, _ := strings.Cut(tag, ","); name != "" {
				vars[prefix+strings.TrimSpace(name)] = true
			}
		}
	}
	for _, cfg := range []any{workerConfig{}, apiConfig{}, base{}, telnyx.Config{}} {
		walk(reflect.TypeOf(cfg), "")
	}
	for _, dest := range []string{twilio.Provider, "telnyx"} {
		walk(reflect.TypeOf(resilience.Settings{}), resilience.EnvPrefix(dest))
	}
	return vars
}

func TestComposeFileWiresTheServices(t *testing.T) {
	t.Parallel()
	services := loadCompose(t)
	for _, name := range []string{"postgres", "migrate", "api", "worker", "fhir-server"} {
		require.Contains(t, services, name)
	}

	require.Equal(t, "postgres:15.10", services["postgres"].Image)
	require.NotNil(t, services["postgres"].Healthcheck, "postgres has a health check")
	require.Contains(t, strings.Join(services["postgres"].Healthcheck.Test, " "), "pg_isready")
	require.NotNil(t, services["fhir-server"].Build, "the HAPI FHIR image with a health-check probe")
	fhirDockerfile, err := os.ReadFile(filepath.Join(repoRoot, services["fhir-server"].Build.Context, "Dockerfile"))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^FROM hapiproject/hapi:v\d`, string(fhirDockerfile), "a public HAPI FHIR image, pinned")
	require.Equal(t, "R4", services["fhir-server"].Environment["hapi.fhir.fhir_version"])

	require.Equal(t, []string{"migrate", "up"}, services["migrate"].Command)
	require.Equal(t, "no", services["migrate"].Restart, "migrate is one-shot")
	require.Equal(t, "service_healthy", services["migrate"].DependsOn["postgres"].Condition)
	require.Equal(t, []string{"api"}, services["api"].Command)
	require.Equal(t, []string{"worker"}, services["worker"].Command)
	require.NotNil(t, services["worker"].Deploy)
	require.GreaterOrEqual(t, services["worker"].Deploy.Replicas, 2, "workers run as replicas")

	set, _, _ := envFile(t)
	for _, name := range []string{"migrate", "api", "worker"} {
		s := services[name]
		require.NotNil(t, s.Build, "%s builds the image", name)
		require.FileExists(t, filepath.Join(repoRoot, s.Build.Context, s.Build.Dockerfile))
		require.NotEmpty(t, s.EnvFile, "%s reads deploy/.env.example", name)
		for _, ef := range s.EnvFile {
			if ef.Required == nil || *ef.Required {
				require.FileExists(t, filepath.Join(repoRoot, ef.Path), "%s's env_file", name)
			}
		}
		require.Equal(t, "deploy/.env.example", s.EnvFile[0].Path)
		for k := range s.Environment {
			require.True(t, readVariables()[k], "%s sets %s, which the binary does not read", name, k)
		}
		if name != "migrate" {
			require.Equal(t, "service_completed_successfully", s.DependsOn["migrate"].Condition, "%s waits for the migration", name)
		}
	}

	// Health checks run the binary itself (distroless has no curl) against
	// the port the service listens on.
	for name, addrVar := range map[string]string{"api": "API_ADDR", "worker": "WORKER_ADDR"} {
		hc := services[name].Healthcheck
		require.NotNil(t, hc, "%s has a health check", name)
		require.Len(t, hc.Test, 4)
		require.Equal(t, []string{"CMD", "/switchboard", "healthcheck"}, hc.Test[:3])
		port := strings.TrimPrefix(set[addrVar], ":")
		require.NotEmpty(t, port, "%s is set in .env.example", addrVar)
		require.Equal(t, "http://127.0.0.1:"+port+"/healthz", hc.Test[3])
	}
	require.Contains(t, services["api"].Ports, "8080:"+strings.TrimPrefix(set["API_ADDR"], ":"))
}

func TestEnvExampleSetsOnlyVariablesTheBinaryReads(t *testing.T) {
	t.Parallel()
	read := readVariables()
	set, optional, undocumented := envFile(t)
	require.Empty(t, undocumented, "every variable in .env.example has a comment line above it")
	for k := range set {
		require.True(t, read[k], ".env.example sets %s, which the binary does not read", k)
	}
	for _, k := range optional {
		require.True(t, read[k], ".env.example shows %s, which the binary does not read", k)
	}
	for _, k := range []string{"DATABASE_URL", "PUBLIC_BASE_URL", "API_ADDR", "WORKER_ADDR", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} {
		require.Contains(t, set, k)
	}
	require.Contains(t, set["DATABASE_URL"], "@postgres:5432/", "the compose postgres service")
}

func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile"))
	require.NoError(t, err)
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	require.Len(t, froms, 2, "multi-stage: a builder and the runtime image")
	require.Equal(t, "golang:1.26", froms[0][1])
	require.Regexp(t, `^(gcr\.io/distroless/static|scratch)`, froms[1][1])
	require.Contains(t, df, "CGO_ENABLED=0")
	require.Contains(t, df, "./cmd/switchboard")
	require.Contains(t, df, "COPY --from=build /out/switchboard /switchboard")
	require.Regexp(t, `(?m)^ENTRYPOINT \["/switchboard"\]`, df)
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(df)
	require.NotNil(t, user, "the image sets a USER")
	require.NotContains(t, []string{"root", "0", "0:0"}, user[1])
	require.FileExists(t, filepath.Join(repoRoot, "deploy", "Dockerfile.dockerignore"))
	ignore, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile.dockerignore"))
	require.NoError(t, err)
	require.Contains(t, string(ignore), ".data", "the local cluster stays out of the build context")
}

// Every image is pinned to a version (never latest), every service that
// keeps running has a health check, and every file a service mounts is in
// the repository.
func TestComposeImagesArePinnedAndHealthChecked(t *testing.T) {
	t.Parallel()
	services := loadCompose(t)
	for _, name := range []string{"prometheus", "grafana"} {
		require.Contains(t, services, name)
	}
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:v?\d+(\.\d+)+(-[a-z0-9.]+)?$`)
	for name, s := range services {
		if s.Build != nil {
			require.True(t, strings.HasSuffix(s.Image, ":local"), "%s builds a local image", name)
			df := filepath.Join(repoRoot, s.Build.Context, cmpOr(s.Build.Dockerfile, "Dockerfile"))
			b, err := os.ReadFile(df)
			require.NoError(t, err, "%s's Dockerfile", name)
			for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(b), -1) {
				require.NotContains(t, m[1], ":latest", "%s: %s", df, m[1])
				require.Contains(t, m[1], ":", "%s: %s has a tag", df, m[1])
			}
		} else {
			require.Regexp(t, pinned, s.Image, "%s's image is pinned to a version", name)
		}
		if name == "migrate" {
			require.Equal(t, "no", s.Restart, "the one service without a health check is one-shot")
			continue
		}
		require.NotNil(t, s.Healthcheck, "%s has a health check", name)
		require.False(t, s.Healthcheck.Disable, name)
		require.NotEmpty(t, s.Healthcheck.Test, name)
		require.Contains(t, []string{"CMD", "CMD-SHELL"}, s.Healthcheck.Test[0], name)
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join(repoRoot, src))
				require.NoError(t, err, "%s mounts %s", name, src)
			}
		}
	}
	require.Equal(t, "service_healthy", services["prometheus"].DependsOn["api"].Condition)
	require.Equal(t, "service_healthy", services["grafana"].DependsOn["prometheus"].Condition)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
