#!/usr/bin/env python3
"""A PFCP UP-function peer for tests, built on scapy's PFCP codec (scapy.contrib.pfcp).

It answers heartbeat, PFD management, association setup/release and session establishment/
modification/deletion requests, keeps the applications' PFDs (their URLs) and the sessions'
PDRs and FARs as scapy decoded them, and writes its whole state as JSON to STATE_FILE after
every change, so a test can see what the UPF holds.
Every start takes a new Recovery Time Stamp, as a restarted UPF does, and forgets all
sessions.

    upf_peer.py ADDRESS PORT STATE_FILE
"""
import json
import os
import socket
import sys
import time

from scapy.contrib.pfcp import (
    IE_ApplicationId, IE_ApplicationID_PFDs, IE_PFDContents, IE_PFDContext,
    PFCPPFDManagementResponse,
    IE_ApplyAction, IE_Cause, IE_CreateFAR, IE_CreatePDR, IE_DuplicatingParameters,
    IE_FAR_Id, IE_FSEID, IE_ForwardingParameters, IE_NetworkInstance, IE_NodeId,
    IE_OuterHeaderCreation, IE_PDI, IE_PDR_Id, IE_Precedence, IE_RecoveryTimeStamp,
    IE_RemoveFAR, IE_RemovePDR, IE_SDF_Filter, IE_DestinationInterface, IE_SourceInterface,
    PFCP, PFCPAssociationReleaseResponse, PFCPAssociationSetupResponse,
    PFCPHeartbeatResponse, PFCPSessionDeletionResponse, PFCPSessionEstablishmentResponse,
    PFCPSessionModificationResponse,
)

ADDRESS, PORT, STATE_FILE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
RECOVERY = int(time.time()) + 2208988800 + int.from_bytes(os.urandom(2), "big")
NODE = IE_NodeId(id_type="IPv4", ipv4=ADDRESS)
ACCEPTED, NOT_FOUND, NO_ASSOCIATION = 1, 65, 72

state = {"recovery": RECOVERY, "associated": False, "messages": 0, "sessions": {}, "applications": {}}
next_seid = 1


def save():
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE_FILE)


def children(ie, cls):
    return [c for c in getattr(ie, "IE_list", []) if isinstance(c, cls)]


def first(ie, cls):
    found = children(ie, cls)
    return found[0] if found else None


def forwarding(params):
    if params is None:
        return None
    out = {"destination": first(params, IE_DestinationInterface).interface}
    ni = first(params, IE_NetworkInstance)
    if ni is not None:
        out["network_instance"] = ni.instance.decode() if isinstance(ni.instance, bytes) else ni.instance
    ohc = first(params, IE_OuterHeaderCreation)
    if ohc is not None:
        out["outer_header"] = {"ipv4": ohc.ipv4, "teid": ohc.TEID}
    return out


def text(ie, field="id"):
    if ie is None:
        return None
    value = getattr(ie, field)
    return value.decode() if isinstance(value, bytes) else value


def provision(ies):
    # PFD management: each application's PFDs replace those it had (none: it is removed)
    for app in ies:
        if isinstance(app, IE_ApplicationID_PFDs):
            urls = [text(contents, "url")
                    for context in children(app, IE_PFDContext)
                    for contents in children(context, IE_PFDContents) if contents.URL]
            state["applications"][text(first(app, IE_ApplicationId))] = urls


def install(session, ies):
    for ie in ies:
        if isinstance(ie, IE_CreatePDR):
            pdi = first(ie, IE_PDI)
            session["pdrs"][str(first(ie, IE_PDR_Id).id)] = {
                "precedence": first(ie, IE_Precedence).precedence,
                "far": first(ie, IE_FAR_Id).id,
                "source": first(pdi, IE_SourceInterface).interface,
                "flows": [f.flow_description.decode() for f in children(pdi, IE_SDF_Filter)],
                "application": text(first(pdi, IE_ApplicationId)),
            }
        elif isinstance(ie, IE_CreateFAR):
            action = first(ie, IE_ApplyAction)
            session["fars"][str(first(ie, IE_FAR_Id).id)] = {
                "apply_action": [f for f in ("DROP", "FORW", "BUFF", "NOCP", "DUPL") if getattr(action, f)],
                "forwarding": forwarding(first(ie, IE_ForwardingParameters)),
                "duplicating": forwarding(first(ie, IE_DuplicatingParameters)),
            }
        elif isinstance(ie, IE_RemovePDR):
            session["pdrs"].pop(str(first(ie, IE_PDR_Id).id), None)
        elif isinstance(ie, IE_RemoveFAR):
            session["fars"].pop(str(first(ie, IE_FAR_Id).id), None)


def answer(req):
    global next_seid
    t, seq, ies = req.message_type, req.seq, list(getattr(req.payload, "IE_list", []))
    node_msg = lambda cls, l: PFCP(version=1, S=0, seq=seq) / cls(IE_list=l)
    if t == 1:
        return node_msg(PFCPHeartbeatResponse, [IE_RecoveryTimeStamp(timestamp=RECOVERY)])
    if t == 3:
        provision(ies)
        return node_msg(PFCPPFDManagementResponse, [IE_Cause(cause=ACCEPTED)])
    if t == 5:
        state["associated"] = True
        return node_msg(PFCPAssociationSetupResponse, [NODE, IE_Cause(cause=ACCEPTED), IE_RecoveryTimeStamp(timestamp=RECOVERY)])
    if t == 9:
        state["associated"] = False
        state["sessions"].clear()
        return node_msg(PFCPAssociationReleaseResponse, [NODE, IE_Cause(cause=ACCEPTED)])
    if t == 50:
        cp = [ie for ie in ies if isinstance(ie, IE_FSEID)][0]
        if not state["associated"]:
            return PFCP(version=1, S=1, seid=cp.seid, seq=seq) / PFCPSessionEstablishmentResponse(IE_list=[NODE, IE_Cause(cause=NO_ASSOCIATION)])
        up = next_seid
        next_seid += 1
        session = {"cp_seid": cp.seid, "pdrs": {}, "fars": {}}
        install(session, ies)
        state["sessions"][str(up)] = session
        return PFCP(version=1, S=1, seid=cp.seid, seq=seq) / PFCPSessionEstablishmentResponse(
            IE_list=[NODE, IE_Cause(cause=ACCEPTED), IE_FSEID(v4=1, seid=up, ipv4=ADDRESS)])
    if t in (52, 54):
        session = state["sessions"].get(str(req.seid))
        cls = PFCPSessionModificationResponse if t == 52 else PFCPSessionDeletionResponse
        if session is None:
            return PFCP(version=1, S=1, seid=0, seq=seq) / cls(IE_list=[IE_Cause(cause=NOT_FOUND)])
        if t == 52:
            install(session, ies)
        else:
            del state["sessions"][str(req.seid)]
        return PFCP(version=1, S=1, seid=session["cp_seid"], seq=seq) / cls(IE_list=[IE_Cause(cause=ACCEPTED)])
    return None


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ADDRESS, PORT))
    save()
    while True:
        data, peer = sock.recvfrom(65535)
        state["messages"] += 1
        response = answer(PFCP(data))
        save()
        if response is not None:
            sock.sendto(bytes(response), peer)


if __name__ == "__main__":
    main()
