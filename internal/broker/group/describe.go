package group

import (
	"context"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupAuthorizedOperations is the ACL operations bitfield of a group when no
// ACLs restrict it: READ (3), DELETE (6) and DESCRIBE (8).
const groupAuthorizedOperations = 1<<3 | 1<<6 | 1<<8

// DescribeGroups handles a DescribeGroups request. Member metadata and the
// protocol are shown only for a Stable group, as Kafka does. A group that
// does not exist is described as Dead, with GROUP_ID_NOT_FOUND from version 6.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	if req == nil {
		return kmsg.NewPtrDescribeGroupsResponse()
	}
	resp := &kmsg.DescribeGroupsResponse{Version: req.Version}
	resp.Default()
	for _, id := range req.Groups {
		dg := c.describe(id, req.Version)
		if req.IncludeAuthorizedOperations {
			dg.AuthorizedOperations = groupAuthorizedOperations
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) describe(id string, version int16) kmsg.DescribeGroupsResponseGroup {
	dg := kmsg.NewDescribeGroupsResponseGroup()
	dg.Group = id
	sh, code := c.shardFor(id)
	if code != 0 {
		dg.ErrorCode = code
		return dg
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.unloaded {
		dg.ErrorCode = sh.code
		return dg
	}
	g := sh.groups[id]
	if g == nil || g.state == stateDead {
		dg.State = stateDead.String()
		if version >= 6 {
			dg.ErrorCode = codeGroupIDNotFound
			dg.ErrorMessage = kmsg.StringPtr("Group " + id + " not found.")
		}
		return dg
	}
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		dg.Protocol = g.protocol
	}
	for _, m := range g.orderedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID = m.id
		dm.InstanceID = m.instanceID
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		dm.MemberAssignment = nonNil(m.assignment)
		dm.ProtocolMetadata = []byte{}
		if stable {
			dm.ProtocolMetadata = nonNil(m.metadata(g.protocol))
		}
		dg.Members = append(dg.Members, dm)
	}
	return dg
}

// ListGroups handles a ListGroups request: the groups of every loaded
// partition, filtered by state (case-insensitively, from version 4) and by
// type (from version 5; every group here is "classic").
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	if req == nil {
		return kmsg.NewPtrListGroupsResponse()
	}
	resp := &kmsg.ListGroupsResponse{Version: req.Version}
	resp.Default()
	shards, ok := c.loadedShards()
	if !ok {
		resp.ErrorCode = codeCoordinatorNotAvailable
		return resp
	}
	states := make(map[string]bool)
	if req.Version >= 4 {
		for _, s := range req.StatesFilter {
			states[strings.ToLower(strings.TrimSpace(s))] = true
		}
	}
	typeOK := true
	if req.Version >= 5 && len(req.TypesFilter) > 0 {
		typeOK = false
		for _, t := range req.TypesFilter {
			if strings.EqualFold(strings.TrimSpace(t), "classic") {
				typeOK = true
			}
		}
	}
	if !typeOK {
		return resp
	}
	for _, sh := range shards {
		sh.mu.Lock()
		if !sh.unloaded {
			for _, g := range sh.groups {
				if g.state == stateDead {
					continue
				}
				if len(states) > 0 && !states[strings.ToLower(g.state.String())] {
					continue
				}
				lg := kmsg.NewListGroupsResponseGroup()
				lg.Group = g.id
				lg.ProtocolType = g.protocolType
				lg.GroupState = g.state.String()
				lg.GroupType = "classic"
				resp.Groups = append(resp.Groups, lg)
			}
		}
		sh.mu.Unlock()
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}
