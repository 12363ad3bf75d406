import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface AllocateRequest {
    service: string;
    avoidPeers: string[];
    contentHash: string;
}
export declare namespace AllocateRequest {
    const codec: () => Codec<AllocateRequest>;
    interface AllocateRequestServiceFieldEvent {
        field: '$.service';
        value: string;
    }
    interface AllocateRequestAvoidPeersFieldEvent {
        field: '$.avoidPeers[]';
        index: number;
        value: string;
    }
    interface AllocateRequestContentHashFieldEvent {
        field: '$.contentHash';
        value: string;
    }
    function encode(obj: Partial<AllocateRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AllocateRequest>): AllocateRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AllocateRequest>): Generator<AllocateRequestServiceFieldEvent | AllocateRequestAvoidPeersFieldEvent | AllocateRequestContentHashFieldEvent>;
}
export interface Phases {
    pullMs: number;
    createMs: number;
    startMs: number;
    readyMs: number;
    totalMs: number;
}
export declare namespace Phases {
    const codec: () => Codec<Phases>;
    interface PhasesPullMsFieldEvent {
        field: '$.pullMs';
        value: number;
    }
    interface PhasesCreateMsFieldEvent {
        field: '$.createMs';
        value: number;
    }
    interface PhasesStartMsFieldEvent {
        field: '$.startMs';
        value: number;
    }
    interface PhasesReadyMsFieldEvent {
        field: '$.readyMs';
        value: number;
    }
    interface PhasesTotalMsFieldEvent {
        field: '$.totalMs';
        value: number;
    }
    function encode(obj: Partial<Phases>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Phases>): Phases;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Phases>): Generator<PhasesPullMsFieldEvent | PhasesCreateMsFieldEvent | PhasesStartMsFieldEvent | PhasesReadyMsFieldEvent | PhasesTotalMsFieldEvent>;
}
export interface Allocated {
    peerId: string;
    multiaddrs: string[];
    phases?: Phases;
    instanceId: string;
    reused: boolean;
    contentHash: string;
}
export declare namespace Allocated {
    const codec: () => Codec<Allocated>;
    interface AllocatedPeerIdFieldEvent {
        field: '$.peerId';
        value: string;
    }
    interface AllocatedMultiaddrsFieldEvent {
        field: '$.multiaddrs[]';
        index: number;
        value: string;
    }
    interface AllocatedPhasesPullMsFieldEvent {
        field: '$.phases.pullMs';
        value: number;
    }
    interface AllocatedPhasesCreateMsFieldEvent {
        field: '$.phases.createMs';
        value: number;
    }
    interface AllocatedPhasesStartMsFieldEvent {
        field: '$.phases.startMs';
        value: number;
    }
    interface AllocatedPhasesReadyMsFieldEvent {
        field: '$.phases.readyMs';
        value: number;
    }
    interface AllocatedPhasesTotalMsFieldEvent {
        field: '$.phases.totalMs';
        value: number;
    }
    interface AllocatedInstanceIdFieldEvent {
        field: '$.instanceId';
        value: string;
    }
    interface AllocatedReusedFieldEvent {
        field: '$.reused';
        value: boolean;
    }
    interface AllocatedContentHashFieldEvent {
        field: '$.contentHash';
        value: string;
    }
    function encode(obj: Partial<Allocated>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Allocated>): Allocated;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Allocated>): Generator<AllocatedPeerIdFieldEvent | AllocatedMultiaddrsFieldEvent | AllocatedPhasesPullMsFieldEvent | AllocatedPhasesCreateMsFieldEvent | AllocatedPhasesStartMsFieldEvent | AllocatedPhasesReadyMsFieldEvent | AllocatedPhasesTotalMsFieldEvent | AllocatedInstanceIdFieldEvent | AllocatedReusedFieldEvent | AllocatedContentHashFieldEvent>;
}
export interface AllocateResponse {
    allocated?: Allocated;
    failure?: Failure;
}
export declare namespace AllocateResponse {
    const codec: () => Codec<AllocateResponse>;
    interface AllocateResponseAllocatedPeerIdFieldEvent {
        field: '$.allocated.peerId';
        value: string;
    }
    interface AllocateResponseAllocatedMultiaddrsFieldEvent {
        field: '$.allocated.multiaddrs[]';
        index: number;
        value: string;
    }
    interface AllocateResponseAllocatedPhasesPullMsFieldEvent {
        field: '$.allocated.phases.pullMs';
        value: number;
    }
    interface AllocateResponseAllocatedPhasesCreateMsFieldEvent {
        field: '$.allocated.phases.createMs';
        value: number;
    }
    interface AllocateResponseAllocatedPhasesStartMsFieldEvent {
        field: '$.allocated.phases.startMs';
        value: number;
    }
    interface AllocateResponseAllocatedPhasesReadyMsFieldEvent {
        field: '$.allocated.phases.readyMs';
        value: number;
    }
    interface AllocateResponseAllocatedPhasesTotalMsFieldEvent {
        field: '$.allocated.phases.totalMs';
        value: number;
    }
    interface AllocateResponseAllocatedInstanceIdFieldEvent {
        field: '$.allocated.instanceId';
        value: string;
    }
    interface AllocateResponseAllocatedReusedFieldEvent {
        field: '$.allocated.reused';
        value: boolean;
    }
    interface AllocateResponseAllocatedContentHashFieldEvent {
        field: '$.allocated.contentHash';
        value: string;
    }
    interface AllocateResponseFailureCodeFieldEvent {
        field: '$.failure.code';
        value: Failure.Code;
    }
    interface AllocateResponseFailureMessageFieldEvent {
        field: '$.failure.message';
        value: string;
    }
    function encode(obj: Partial<AllocateResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AllocateResponse>): AllocateResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AllocateResponse>): Generator<AllocateResponseAllocatedPeerIdFieldEvent | AllocateResponseAllocatedMultiaddrsFieldEvent | AllocateResponseAllocatedPhasesPullMsFieldEvent | AllocateResponseAllocatedPhasesCreateMsFieldEvent | AllocateResponseAllocatedPhasesStartMsFieldEvent | AllocateResponseAllocatedPhasesReadyMsFieldEvent | AllocateResponseAllocatedPhasesTotalMsFieldEvent | AllocateResponseAllocatedInstanceIdFieldEvent | AllocateResponseAllocatedReusedFieldEvent | AllocateResponseAllocatedContentHashFieldEvent | AllocateResponseFailureCodeFieldEvent | AllocateResponseFailureMessageFieldEvent>;
}
export interface Failure {
    code: Failure.Code;
    message: string;
}
export declare namespace Failure {
    enum Code {
        INTERNAL = "INTERNAL",
        NOT_FOUND = "NOT_FOUND",
        CAPACITY = "CAPACITY",
        IMAGE = "IMAGE",
        TIMEOUT = "TIMEOUT",
        UNAUTHORIZED = "UNAUTHORIZED",
        RATE_LIMITED = "RATE_LIMITED",
        BAD_REQUEST = "BAD_REQUEST",
        CONFLICT = "CONFLICT",
        UNAVAILABLE = "UNAVAILABLE"
    }
    namespace Code {
        const codec: () => Codec<Code>;
    }
    const codec: () => Codec<Failure>;
    interface FailureCodeFieldEvent {
        field: '$.code';
        value: Failure.Code;
    }
    interface FailureMessageFieldEvent {
        field: '$.message';
        value: string;
    }
    function encode(obj: Partial<Failure>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Failure>): Failure;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Failure>): Generator<FailureCodeFieldEvent | FailureMessageFieldEvent>;
}
