package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"time"
)

// ecsMetadataEnv is set by the ECS agent (EC2 and Fargate) in every container: the base URL of
// the task metadata endpoint v4.
const ecsMetadataEnv = "ECS_CONTAINER_METADATA_URI_V4"

// ecsTaskWorkerID names the worker after the ECS task it runs in: the task id, the last part of
// the task ARN (arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/TASK_ID), read from the task metadata
// endpoint. It returns "" outside ECS or when the endpoint does not answer within two seconds;
// the worker id is then "<hostname>-<pid>".
func ecsTaskWorkerID() string {
	base := os.Getenv(ecsMetadataEnv)
	if base == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/task", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var task struct {
		TaskARN string `json:"TaskARN"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&task) != nil {
		return ""
	}
	i := strings.LastIndex(task.TaskARN, "/")
	if i < 0 || i == len(task.TaskARN)-1 {
		return ""
	}
	return task.TaskARN[i+1:]
}
