package chat

import (
	"os/exec"
	"strings"
	"testing"
)

// The hub links no adapter: the bus, presence and usage it runs over are interfaces (in bus, presence and
// budget), and their Redis implementations live in packages of their own, which only app/server puts
// together.
func TestHubLinksNoAdapter(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "redis") || strings.Contains(dep, "jackc/pgx") || strings.HasSuffix(dep, "/app/store") {
			t.Errorf("app/chat links %s", dep)
		}
	}
}
