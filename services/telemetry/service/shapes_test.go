package service_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/telemetry/service"
)

// Thresholds per GPU model come from -threshold.shapes: the file's
// temperature applies to its model, a value it leaves out is the default.
func TestShapesFile(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	file := filepath.Join(t.TempDir(), "shapes.json")
	// sampleBatch: 30 + util/2 °C and 100 + 4 × util W of a 700 W limit.
	if err := os.WriteFile(file, []byte(`{"NVIDIA H100 80GB HBM3": {"temperatureC": 50}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startWith(t, nc, func(d *service.Deps) { d.Config.ShapesFile = file })
	ctx := context.Background()
	for s := range 3 {
		if err := pub.PublishBatch(ctx, []bus.Outgoing{sampleBatch("n1", s, 50, 0)}); err != nil { // 55 °C, 300 W
			t.Fatal(err)
		}
	}
	temp, _ := events.TelemetryAlertSubject("c1", "n1", events.AlertTemperature)
	var alert events.GPUAlert
	eventually(t, "temperature alert at the model's 50 °C", func() bool {
		st, err := js.Stream(ctx, events.StreamTelemetry)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, temp)
		if err != nil {
			return false
		}
		ev, err := bus.ParseEvent(m.Data)
		return err == nil && json.Unmarshal(ev.Data, &alert) == nil
	})
	if alert.State != "raised" || alert.Threshold != 50 || alert.Value != 55 {
		t.Errorf("alert = %+v, want raised at 55 over 50", alert)
	}
	st, err := js.Stream(ctx, events.StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	power, _ := events.TelemetryAlertSubject("c1", "n1", events.AlertPower)
	if _, err := st.GetLastMsgForSubject(ctx, power); err == nil {
		t.Error("a power alert at 300 W: the default (the GPU's 700 W limit) should apply")
	}
}

// A thresholds file that cannot be used stops the service at start, naming it.
func TestShapesFileRejected(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	scheduler(t, nc, js, time.Hour)
	dir := t.TempDir()
	for name, content := range map[string]string{
		"unknown-field.json": `{"NVIDIA H100 80GB HBM3": {"temperature": 50}}`,
		"negative.json":      `{"NVIDIA H100 80GB HBM3": {"powerW": -1}}`,
		"not-json.json":      `temperatureC=50`,
		"missing.json":       "",
	} {
		path := filepath.Join(dir, name)
		if name != "missing.json" {
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := config()
		cfg.ShapesFile = path
		err := service.Run(context.Background(), service.Deps{Config: cfg, NATS: nc})
		if err == nil || !strings.Contains(err.Error(), "threshold.shapes") {
			t.Errorf("%s: Run() = %v, want an error naming threshold.shapes", name, err)
		}
	}
}
