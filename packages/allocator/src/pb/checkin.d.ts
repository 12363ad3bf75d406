import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface CheckIn {
    kind: CheckIn.Kind;
    instanceId: string;
    multiaddrs: string[];
    idleMs: bigint;
    inFlight: number;
    requestsTotal: bigint;
    draining: boolean;
}
export declare namespace CheckIn {
    enum Kind {
        READY = "READY",
        STATS = "STATS"
    }
    namespace Kind {
        const codec: () => Codec<Kind>;
    }
    const codec: () => Codec<CheckIn>;
    interface CheckInKindFieldEvent {
        field: '$.kind';
        value: CheckIn.Kind;
    }
    interface CheckInInstanceIdFieldEvent {
        field: '$.instanceId';
        value: string;
    }
    interface CheckInMultiaddrsFieldEvent {
        field: '$.multiaddrs[]';
        index: number;
        value: string;
    }
    interface CheckInIdleMsFieldEvent {
        field: '$.idleMs';
        value: bigint;
    }
    interface CheckInInFlightFieldEvent {
        field: '$.inFlight';
        value: number;
    }
    interface CheckInRequestsTotalFieldEvent {
        field: '$.requestsTotal';
        value: bigint;
    }
    interface CheckInDrainingFieldEvent {
        field: '$.draining';
        value: boolean;
    }
    function encode(obj: Partial<CheckIn>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<CheckIn>): CheckIn;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<CheckIn>): Generator<CheckInKindFieldEvent | CheckInInstanceIdFieldEvent | CheckInMultiaddrsFieldEvent | CheckInIdleMsFieldEvent | CheckInInFlightFieldEvent | CheckInRequestsTotalFieldEvent | CheckInDrainingFieldEvent>;
}
export interface CheckInResponse {
    drain: boolean;
    failure?: Failure;
    awaitService: boolean;
}
export declare namespace CheckInResponse {
    const codec: () => Codec<CheckInResponse>;
    interface CheckInResponseDrainFieldEvent {
        field: '$.drain';
        value: boolean;
    }
    interface CheckInResponseFailureCodeFieldEvent {
        field: '$.failure.code';
        value: Failure.Code;
    }
    interface CheckInResponseFailureMessageFieldEvent {
        field: '$.failure.message';
        value: string;
    }
    interface CheckInResponseAwaitServiceFieldEvent {
        field: '$.awaitService';
        value: boolean;
    }
    function encode(obj: Partial<CheckInResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<CheckInResponse>): CheckInResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<CheckInResponse>): Generator<CheckInResponseDrainFieldEvent | CheckInResponseFailureCodeFieldEvent | CheckInResponseFailureMessageFieldEvent | CheckInResponseAwaitServiceFieldEvent>;
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
