package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// keycloakImage is the Keycloak of the container variant; keep it the
// version scripts/keycloak.sh runs.
const keycloakImage = "quay.io/keycloak/keycloak:26.7.3"

// TestEndToEndInContainers is the end-to-end test on PostgreSQL and Keycloak
// started by testcontainers-go, for machines with Docker instead of the
// servers of scripts/. It is skipped where no Docker daemon answers.
func TestEndToEndInContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and Keycloak containers")
	}
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx := context.Background()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Remove(context.Background()) })

	pg, err := testcontainers.Run(ctx, "postgres:16-alpine",
		testcontainers.WithEnv(map[string]string{"POSTGRES_DB": "keycloak", "POSTGRES_USER": "keycloak", "POSTGRES_PASSWORD": "keycloak"}),
		testcontainers.WithExposedPorts("5432/tcp"),
		network.WithNetwork([]string{"pg"}, nw),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("5432/tcp").WithStartupTimeout(2*time.Minute)),
	)
	testcontainers.CleanupContainer(t, pg)
	if err != nil {
		t.Fatal(err)
	}
	kcC, err := testcontainers.Run(ctx, keycloakImage,
		testcontainers.WithEnv(map[string]string{
			"KC_DB": "postgres", "KC_DB_URL": "jdbc:postgresql://pg:5432/keycloak",
			"KC_DB_USERNAME": "keycloak", "KC_DB_PASSWORD": "keycloak",
			"KC_BOOTSTRAP_ADMIN_USERNAME": "admin", "KC_BOOTSTRAP_ADMIN_PASSWORD": "admin",
		}),
		testcontainers.WithCmd("start-dev"),
		testcontainers.WithExposedPorts("8080/tcp"),
		network.WithNetwork([]string{"keycloak"}, nw),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/realms/master").WithPort("8080/tcp").WithStartupTimeout(5*time.Minute)),
	)
	testcontainers.CleanupContainer(t, kcC)
	if err != nil {
		t.Fatal(err)
	}
	kcURL, err := kcC.PortEndpoint(ctx, "8080/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	pgAddr, err := pg.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	kc := testenv.Keycloak{
		URL: strings.Replace(kcURL, "localhost", "127.0.0.1", 1), Admin: "admin", AdminPassword: "admin",
		DBURL: "postgres://keycloak:keycloak@" + strings.Replace(pgAddr, "localhost", "127.0.0.1", 1) + "/keycloak?sslmode=disable",
	}
	// The seed finds Keycloak in the environment.
	t.Setenv("KCEE_TEST_KEYCLOAK_URL", kc.URL)
	t.Setenv("KCEE_TEST_KEYCLOAK_ADMIN", kc.Admin)
	t.Setenv("KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD", kc.AdminPassword)
	t.Setenv("KCEE_TEST_KEYCLOAK_DB_URL", kc.DBURL)
	checkEveryEventArrivesOnce(t, kc)
}
