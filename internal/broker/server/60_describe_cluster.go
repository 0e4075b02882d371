package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDescribeCluster lists the live brokers and the controller.
func (b *Broker) handleDescribeCluster(_ context.Context, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	img := b.Image()
	resp.ClusterID, resp.ControllerID = img.ClusterID, img.ControllerID
	for _, bk := range img.Brokers {
		if bk.Alive {
			resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: bk.ID, Host: bk.Host, Port: bk.Port})
		}
	}
	return resp
}
