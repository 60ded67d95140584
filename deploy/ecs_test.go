package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/iampolicy"
)

const (
	taskDefPath  = "ecs/task-definition.json"
	templatePath = "ecs/shardhose.yaml"
)

type keyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type taskDefinition struct {
	RequiresCompatibilities []string `json:"requiresCompatibilities"`
	ContainerDefinitions    []struct {
		Name        string     `json:"name"`
		StopTimeout int        `json:"stopTimeout"`
		Environment []keyValue `json:"environment"`
		HealthCheck struct {
			Command []string `json:"command"`
		} `json:"healthCheck"`
		LogConfiguration struct {
			LogDriver string            `json:"logDriver"`
			Options   map[string]string `json:"options"`
		} `json:"logConfiguration"`
	} `json:"containerDefinitions"`
}

var healthCheck = []string{"CMD", "/shardhose", "healthcheck"}

// loadEnv loads the configuration a container gets from these SHARDHOSE_* variables alone.
func loadEnv(t *testing.T, env []keyValue) config.Config {
	t.Helper()
	var vars []string
	for _, kv := range env {
		if !strings.HasPrefix(kv.Name, config.EnvPrefix) {
			t.Errorf("environment variable %s is not a SHARDHOSE_ setting", kv.Name)
		}
		if kv.Name == "SHARDHOSE_LEASES__WORKER_ID" {
			t.Errorf("%s is set: on ECS the worker id comes from the task", kv.Name)
		}
		vars = append(vars, kv.Name+"="+kv.Value)
	}
	cfg, err := config.Load(config.LoadOptions{Environ: func() []string { return vars }})
	if err != nil {
		t.Fatalf("the task's environment is not a valid configuration:\n%v", err)
	}
	return cfg
}

func TestTaskDefinitionDrainsHealthChecksAndLogs(t *testing.T) {
	raw, err := os.ReadFile(taskDefPath)
	if err != nil {
		t.Fatal(err)
	}
	var td taskDefinition
	if err := json.Unmarshal(raw, &td); err != nil {
		t.Fatalf("%s: %v", taskDefPath, err)
	}
	if !slices.Contains(td.RequiresCompatibilities, "FARGATE") || len(td.ContainerDefinitions) != 1 {
		t.Fatalf("want one container for FARGATE: %+v", td)
	}
	c := td.ContainerDefinitions[0]
	cfg := loadEnv(t, c.Environment)
	if stop := time.Duration(c.StopTimeout) * time.Second; stop <= cfg.Shutdown.DrainTimeout {
		t.Errorf("stopTimeout %s must be above shutdown.drain_timeout %s", stop, cfg.Shutdown.DrainTimeout)
	}
	if !slices.Equal(c.HealthCheck.Command, healthCheck) {
		t.Errorf("health check %q, want %q", c.HealthCheck.Command, healthCheck)
	}
	o := c.LogConfiguration.Options
	if c.LogConfiguration.LogDriver != "awslogs" || o["awslogs-group"] == "" || o["awslogs-region"] == "" || o["awslogs-stream-prefix"] == "" {
		t.Errorf("log configuration %+v, want awslogs with group, region and stream prefix", c.LogConfiguration)
	}
}

// cfn reads a CloudFormation YAML template into plain values, with its short-form functions
// (!Ref X, !GetAtt X.Y, !Sub S, ...) as the long form ({"Ref": X}, {"Fn::GetAtt": ...}).
func cfn(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v, ok := plain(&doc).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", path)
	}
	return v
}

func plain(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return plain(n.Content[0])
	case yaml.AliasNode:
		return plain(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		var l []any
		for _, c := range n.Content {
			l = append(l, plain(c))
		}
		v = l
	default:
		v = n.Value
	}
	if fn, ok := strings.CutPrefix(n.Tag, "!"); ok && !strings.HasPrefix(fn, "!") { // !!str, !!map: plain YAML
		if fn != "Ref" {
			fn = "Fn::" + fn
		}
		if s, isString := v.(string); isString && fn == "Fn::GetAtt" {
			name, attr, _ := strings.Cut(s, ".")
			v = []any{name, attr}
		}
		return map[string]any{fn: v}
	}
	return v
}

var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9:]+)(\.[A-Za-z0-9.]+)?\}`)

// references walks v and reports every logical name it refers to, with where.
func references(v any, where string, found func(name, where string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch k {
			case "Ref":
				if s, ok := e.(string); ok {
					found(s, where)
				}
			case "Fn::GetAtt":
				if l, ok := e.([]any); ok && len(l) > 0 {
					found(fmt.Sprint(l[0]), where)
				}
			case "Fn::Sub":
				s, _ := e.(string)
				if l, ok := e.([]any); ok && len(l) > 0 {
					s, _ = l[0].(string)
				}
				for _, m := range subRef.FindAllStringSubmatch(s, -1) {
					found(m[1], where)
				}
			}
			references(e, where+"."+k, found)
		}
	case []any:
		for i, e := range x {
			references(e, fmt.Sprintf("%s[%d]", where, i), found)
		}
	}
}

func get(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a mapping at %q", strings.Join(path, "."), p)
		}
		v = m[p]
	}
	return v
}

func TestTemplateReferencesResolveAndMatchTheTaskDefinition(t *testing.T) {
	tpl := cfn(t, templatePath)
	params, _ := tpl["Parameters"].(map[string]any)
	resources, _ := tpl["Resources"].(map[string]any)
	conditions, _ := tpl["Conditions"].(map[string]any)
	if len(resources) == 0 {
		t.Fatal("no resources")
	}
	references(tpl, "", func(name, where string) {
		_, isParam := params[name]
		_, isResource := resources[name]
		if !isParam && !isResource && !strings.HasPrefix(name, "AWS::") {
			t.Errorf("%s refers to %q, which is neither a parameter nor a resource", where, name)
		}
	})
	for name, r := range resources {
		if c, ok := get(t, r, "Properties", "AlarmActions").(map[string]any); ok {
			if l, ok := c["Fn::If"].([]any); !ok || conditions[fmt.Sprint(l[0])] == nil {
				t.Errorf("%s: AlarmActions uses an undefined condition", name)
			}
		}
	}

	paramDefault := func(name string) int {
		n, err := strconv.Atoi(fmt.Sprint(get(t, params, name, "Default")))
		if err != nil {
			t.Fatalf("parameter %s default: %v", name, err)
		}
		return n
	}
	container := get(t, resources, "TaskDefinition", "Properties", "ContainerDefinitions").([]any)[0]
	stopRef := get(t, container, "StopTimeout", "Ref")
	if stop, drain := paramDefault(fmt.Sprint(stopRef)), paramDefault("DrainTimeoutSeconds"); stop <= drain {
		t.Errorf("StopTimeout %ds is not above the drain timeout %ds", stop, drain)
	}
	var hc []string
	for _, s := range get(t, container, "HealthCheck", "Command").([]any) {
		hc = append(hc, fmt.Sprint(s))
	}
	if !slices.Equal(hc, healthCheck) {
		t.Errorf("template health check %q, want %q", hc, healthCheck)
	}
	if d := get(t, container, "LogConfiguration", "LogDriver"); d != "awslogs" {
		t.Errorf("log driver %v", d)
	}

	// The same settings as the task definition file, with the template's values.
	raw, _ := os.ReadFile(taskDefPath)
	var td taskDefinition
	if err := json.Unmarshal(raw, &td); err != nil {
		t.Fatal(err)
	}
	var fileNames, tplNames []string
	for _, kv := range td.ContainerDefinitions[0].Environment {
		fileNames = append(fileNames, kv.Name)
	}
	sample := map[string]string{
		"AWS::Region": "us-east-1", "StreamName": "orders", "LeaseTable": "shardhose-leases",
		"BucketName": "orders-lake", "DeadLetterQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/shardhose-dlq",
		"DrainTimeoutSeconds": strconv.Itoa(paramDefault("DrainTimeoutSeconds")),
		"MetricsNamespace":    fmt.Sprint(get(t, params, "MetricsNamespace", "Default")),
	}
	var env []keyValue
	for _, e := range get(t, container, "Environment").([]any) {
		name := fmt.Sprint(get(t, e, "Name"))
		tplNames = append(tplNames, name)
		value := get(t, e, "Value")
		switch v := value.(type) {
		case string:
			env = append(env, keyValue{name, v})
		case map[string]any:
			s := fmt.Sprint(v["Ref"])
			if sub, ok := v["Fn::Sub"].(string); ok {
				s = subRef.ReplaceAllStringFunc(sub, func(m string) string { return sample[subRef.FindStringSubmatch(m)[1]] })
			} else {
				s = sample[s]
			}
			env = append(env, keyValue{name, s})
		}
	}
	slices.Sort(fileNames)
	slices.Sort(tplNames)
	if !slices.Equal(fileNames, tplNames) {
		t.Errorf("the template sets %q, the task definition file %q", tplNames, fileNames)
	}

	// The task role allows exactly what `shardhose iam-policy` prints for that configuration.
	res, err := iampolicy.For(loadEnv(t, env), iampolicy.Options{Account: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, s := range res.Policy.Statement {
		want[s.Sid] = s.Action
	}
	got := map[string][]string{}
	policies := get(t, resources, "TaskRole", "Properties", "Policies").([]any)
	for _, s := range get(t, policies[0], "PolicyDocument", "Statement").([]any) {
		var actions []string
		for _, a := range get(t, s, "Action").([]any) {
			actions = append(actions, fmt.Sprint(a))
		}
		slices.Sort(actions)
		got[fmt.Sprint(get(t, s, "Sid"))] = actions
	}
	for sid, actions := range want {
		if !slices.Equal(got[sid], actions) {
			t.Errorf("task role statement %s allows %q; shardhose iam-policy says %q", sid, got[sid], actions)
		}
	}
	for sid := range got {
		if _, ok := want[sid]; !ok {
			t.Errorf("task role statement %s is not in shardhose iam-policy's policy", sid)
		}
	}

	// The recipe's alarms.
	metrics := map[string]bool{}
	for _, r := range resources {
		if get(t, r, "Type") == "AWS::CloudWatch::Alarm" {
			metrics[fmt.Sprint(get(t, r, "Properties", "MetricName"))] = true
		}
	}
	for _, m := range []string{"IteratorAge", "DeliveryToS3.DataFreshness", "ApproximateNumberOfMessagesVisible"} {
		if !metrics[m] {
			t.Errorf("no alarm on %s", m)
		}
	}
}

// TestTemplateLintsClean runs cfn-lint on the template when it is installed.
func TestTemplateLintsClean(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint is not installed (it is on PyPI only, not in Debian or npm); the structure test above checks the template")
	}
	if out, err := exec.Command(bin, templatePath).CombinedOutput(); err != nil {
		t.Fatalf("cfn-lint %s: %v\n%s", templatePath, err, out)
	}
}
