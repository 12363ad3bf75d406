import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface StatusRequest {
}
export declare namespace StatusRequest {
    const codec: () => Codec<StatusRequest>;
    function encode(obj: Partial<StatusRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StatusRequest>): StatusRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StatusRequest>): Generator<{}>;
}
export interface Capacity {
    instances: number;
    maxInstances: number;
    cpu: number;
    cpuBudget: number;
    memoryMb: number;
    memoryBudgetMb: number;
}
export declare namespace Capacity {
    const codec: () => Codec<Capacity>;
    interface CapacityInstancesFieldEvent {
        field: '$.instances';
        value: number;
    }
    interface CapacityMaxInstancesFieldEvent {
        field: '$.maxInstances';
        value: number;
    }
    interface CapacityCpuFieldEvent {
        field: '$.cpu';
        value: number;
    }
    interface CapacityCpuBudgetFieldEvent {
        field: '$.cpuBudget';
        value: number;
    }
    interface CapacityMemoryMbFieldEvent {
        field: '$.memoryMb';
        value: number;
    }
    interface CapacityMemoryBudgetMbFieldEvent {
        field: '$.memoryBudgetMb';
        value: number;
    }
    function encode(obj: Partial<Capacity>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Capacity>): Capacity;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Capacity>): Generator<CapacityInstancesFieldEvent | CapacityMaxInstancesFieldEvent | CapacityCpuFieldEvent | CapacityCpuBudgetFieldEvent | CapacityMemoryMbFieldEvent | CapacityMemoryBudgetMbFieldEvent>;
}
export interface StatusResponse {
    capacity?: Capacity;
    failure?: Failure;
}
export declare namespace StatusResponse {
    const codec: () => Codec<StatusResponse>;
    interface StatusResponseCapacityInstancesFieldEvent {
        field: '$.capacity.instances';
        value: number;
    }
    interface StatusResponseCapacityMaxInstancesFieldEvent {
        field: '$.capacity.maxInstances';
        value: number;
    }
    interface StatusResponseCapacityCpuFieldEvent {
        field: '$.capacity.cpu';
        value: number;
    }
    interface StatusResponseCapacityCpuBudgetFieldEvent {
        field: '$.capacity.cpuBudget';
        value: number;
    }
    interface StatusResponseCapacityMemoryMbFieldEvent {
        field: '$.capacity.memoryMb';
        value: number;
    }
    interface StatusResponseCapacityMemoryBudgetMbFieldEvent {
        field: '$.capacity.memoryBudgetMb';
        value: number;
    }
    interface StatusResponseFailureCodeFieldEvent {
        field: '$.failure.code';
        value: Failure.Code;
    }
    interface StatusResponseFailureMessageFieldEvent {
        field: '$.failure.message';
        value: string;
    }
    function encode(obj: Partial<StatusResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StatusResponse>): StatusResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StatusResponse>): Generator<StatusResponseCapacityInstancesFieldEvent | StatusResponseCapacityMaxInstancesFieldEvent | StatusResponseCapacityCpuFieldEvent | StatusResponseCapacityCpuBudgetFieldEvent | StatusResponseCapacityMemoryMbFieldEvent | StatusResponseCapacityMemoryBudgetMbFieldEvent | StatusResponseFailureCodeFieldEvent | StatusResponseFailureMessageFieldEvent>;
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
