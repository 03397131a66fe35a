package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

// Clientsets seeds one fake clientset per cluster of s with its nodes, keyed
// by cluster name. The clientsets serve get, list, watch, patch and delete
// like an API server (without validation or admission).
func Clientsets(s Scenario) map[string]kubernetes.Interface {
	out := make(map[string]kubernetes.Interface, len(s.Clusters))
	for _, c := range s.Clusters {
		nodes := Nodes(c)
		objs := make([]runtime.Object, len(nodes))
		for i, n := range nodes {
			objs[i] = n
		}
		// NewSimpleClientset, not NewClientset: the field-managed tracker of
		// the latter rebuilds a REST mapper on every write (milliseconds per
		// patch), which a simulated cluster of hundreds of nodes cannot afford.
		// Patches (JSON, merge, strategic merge) behave the same in both.
		cs := fake.NewSimpleClientset(objs...) //nolint:staticcheck // SA1019, see above
		unboundedWatches(cs)
		out[c.Name] = cs

	}
	return out
}

// Nodes builds the v1.Node objects of cluster c: nvidia.com/gpu capacity and
// allocatable, the labels GPU feature discovery and the cloud write, a
// providerID and condition Ready=True.
func Nodes(c Cluster) []*corev1.Node {
	var out []*corev1.Node
	for _, g := range c.Nodes {
		for i := 0; i < g.Count; i++ {
			out = append(out, Node(c.Name, g, i))
		}
	}
	return out
}

// Node builds node i of group g in cluster.
func Node(cluster string, g NodeGroup, i int) *corev1.Node {
	name := g.NodeName(i)
	gpus := *resource.NewQuantity(int64(g.GPUs), resource.DecimalSI)
	res := corev1.ResourceList{
		inventory.ResourceGPU:           gpus,
		corev1.ResourceCPU:              resource.MustParse("192"),
		corev1.ResourceMemory:           resource.MustParse("2048Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	labels := map[string]string{
		corev1.LabelHostname:        name,
		corev1.LabelOSStable:        "linux",
		corev1.LabelArchStable:      "amd64",
		inventory.LabelInstanceType: g.InstanceType,
		inventory.LabelRegion:       g.Region,
		inventory.LabelGPUProduct:   g.GPUProduct,
		inventory.LabelGPUMemory:    strconv.Itoa(g.GPUMemoryMiB),
		inventory.LabelGPUCount:     strconv.Itoa(g.GPUs),
	}
	if g.Region == "" {
		delete(labels, inventory.LabelRegion)
	}
	return &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{ProviderID: providerID(cluster, g, name)},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res.DeepCopy(),
			Conditions: []corev1.NodeCondition{{
				Type:    corev1.NodeReady,
				Status:  corev1.ConditionTrue,
				Reason:  "KubeletReady",
				Message: "kubelet is posting ready status (simulated)",
			}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
}

// providerID mimics the cloud's format with a stable id derived from the
// cluster and node, so the same scenario always yields the same objects.
func providerID(cluster string, g NodeGroup, name string) string {
	sum := sha256.Sum256([]byte(cluster + "/" + name))
	id := hex.EncodeToString(sum[:])
	zone := g.Region + "-a"
	switch g.CloudProvider {
	case "aws":
		return fmt.Sprintf("aws:///%sa/i-%s", g.Region, id[:17])
	case "gcp", "gce":
		return fmt.Sprintf("gce://egs-sim-%s/%s/%s", cluster, zone, name)
	case "azure":
		return fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s",
			id[:8]+"-"+id[8:12]+"-"+id[12:16]+"-"+id[16:20]+"-"+id[20:32], cluster, name)
	case "":
		return "sim://" + cluster + "/" + name
	default:
		return g.CloudProvider + "://" + cluster + "/" + name
	}
}

// unboundedWatches makes every watch of cs relay its events through an
// unbounded queue. The fake tracker sends each event into a channel of 100
// while it holds its lock and panics ("channel full") when a watcher lags by
// more: under a burst of writes (thousands of hand-overs a second) with a
// busy garbage collector, an informer can. A real API server buffers far
// more and drops a slow watcher instead; the relay keeps the simulation from
// dying where a real cluster would not.
func unboundedWatches(cs *fake.Clientset) {
	tracker := cs.Tracker()
	cs.PrependWatchReactor("*", func(action k8stesting.Action) (bool, watch.Interface, error) {
		var opts []metav1.ListOptions
		if wa, ok := action.(k8stesting.WatchActionImpl); ok {
			opts = append(opts, wa.ListOptions)
		}
		w, err := tracker.Watch(action.GetResource(), action.GetNamespace(), opts...)
		if err != nil {
			return false, nil, err
		}
		return true, newRelay(w), nil
	})
}

// relay is a watch.Interface that drains another one at once into a queue.
type relay struct {
	in       watch.Interface
	out      chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

func newRelay(in watch.Interface) *relay {
	r := &relay{in: in, out: make(chan watch.Event), stop: make(chan struct{})}
	go r.run()
	return r
}

func (r *relay) run() {
	defer close(r.out)
	var queue []watch.Event
	src := r.in.ResultChan()
	for src != nil || len(queue) > 0 {
		var send chan watch.Event
		var next watch.Event
		if len(queue) > 0 {
			send, next = r.out, queue[0]
		}
		select {
		case ev, ok := <-src:
			if !ok {
				src = nil
				continue
			}
			queue = append(queue, ev)
		case send <- next:
			queue[0] = watch.Event{}
			queue = queue[1:]
		case <-r.stop:
			return
		}
	}
}

// Stop ends the watch; ResultChan is closed.
func (r *relay) Stop() {
	r.stopOnce.Do(func() {
		close(r.stop)
		r.in.Stop()
	})
}

// ResultChan yields the relayed events.
func (r *relay) ResultChan() <-chan watch.Event { return r.out }
