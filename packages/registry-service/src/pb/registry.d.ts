import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface ServiceRecord {
    name: string;
    contentHash: string;
    image: string;
    softRttMs: number;
    hardRttMs: number;
    cpu: number;
    memoryMb: number;
    proxyClientMode: boolean;
    createdAt: string;
    updatedAt: string;
    revision: bigint;
}
export declare namespace ServiceRecord {
    const codec: () => Codec<ServiceRecord>;
    interface ServiceRecordNameFieldEvent {
        field: '$.name';
        value: string;
    }
    interface ServiceRecordContentHashFieldEvent {
        field: '$.contentHash';
        value: string;
    }
    interface ServiceRecordImageFieldEvent {
        field: '$.image';
        value: string;
    }
    interface ServiceRecordSoftRttMsFieldEvent {
        field: '$.softRttMs';
        value: number;
    }
    interface ServiceRecordHardRttMsFieldEvent {
        field: '$.hardRttMs';
        value: number;
    }
    interface ServiceRecordCpuFieldEvent {
        field: '$.cpu';
        value: number;
    }
    interface ServiceRecordMemoryMbFieldEvent {
        field: '$.memoryMb';
        value: number;
    }
    interface ServiceRecordProxyClientModeFieldEvent {
        field: '$.proxyClientMode';
        value: boolean;
    }
    interface ServiceRecordCreatedAtFieldEvent {
        field: '$.createdAt';
        value: string;
    }
    interface ServiceRecordUpdatedAtFieldEvent {
        field: '$.updatedAt';
        value: string;
    }
    interface ServiceRecordRevisionFieldEvent {
        field: '$.revision';
        value: bigint;
    }
    function encode(obj: Partial<ServiceRecord>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ServiceRecord>): ServiceRecord;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ServiceRecord>): Generator<ServiceRecordNameFieldEvent | ServiceRecordContentHashFieldEvent | ServiceRecordImageFieldEvent | ServiceRecordSoftRttMsFieldEvent | ServiceRecordHardRttMsFieldEvent | ServiceRecordCpuFieldEvent | ServiceRecordMemoryMbFieldEvent | ServiceRecordProxyClientModeFieldEvent | ServiceRecordCreatedAtFieldEvent | ServiceRecordUpdatedAtFieldEvent | ServiceRecordRevisionFieldEvent>;
}
export interface AddRequest {
    record?: ServiceRecord;
    expectedRevision?: bigint;
}
export declare namespace AddRequest {
    const codec: () => Codec<AddRequest>;
    interface AddRequestRecordNameFieldEvent {
        field: '$.record.name';
        value: string;
    }
    interface AddRequestRecordContentHashFieldEvent {
        field: '$.record.contentHash';
        value: string;
    }
    interface AddRequestRecordImageFieldEvent {
        field: '$.record.image';
        value: string;
    }
    interface AddRequestRecordSoftRttMsFieldEvent {
        field: '$.record.softRttMs';
        value: number;
    }
    interface AddRequestRecordHardRttMsFieldEvent {
        field: '$.record.hardRttMs';
        value: number;
    }
    interface AddRequestRecordCpuFieldEvent {
        field: '$.record.cpu';
        value: number;
    }
    interface AddRequestRecordMemoryMbFieldEvent {
        field: '$.record.memoryMb';
        value: number;
    }
    interface AddRequestRecordProxyClientModeFieldEvent {
        field: '$.record.proxyClientMode';
        value: boolean;
    }
    interface AddRequestRecordCreatedAtFieldEvent {
        field: '$.record.createdAt';
        value: string;
    }
    interface AddRequestRecordUpdatedAtFieldEvent {
        field: '$.record.updatedAt';
        value: string;
    }
    interface AddRequestRecordRevisionFieldEvent {
        field: '$.record.revision';
        value: bigint;
    }
    interface AddRequestExpectedRevisionFieldEvent {
        field: '$.expectedRevision';
        value: bigint;
    }
    function encode(obj: Partial<AddRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AddRequest>): AddRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AddRequest>): Generator<AddRequestRecordNameFieldEvent | AddRequestRecordContentHashFieldEvent | AddRequestRecordImageFieldEvent | AddRequestRecordSoftRttMsFieldEvent | AddRequestRecordHardRttMsFieldEvent | AddRequestRecordCpuFieldEvent | AddRequestRecordMemoryMbFieldEvent | AddRequestRecordProxyClientModeFieldEvent | AddRequestRecordCreatedAtFieldEvent | AddRequestRecordUpdatedAtFieldEvent | AddRequestRecordRevisionFieldEvent | AddRequestExpectedRevisionFieldEvent>;
}
export interface GetRequest {
    name: string;
}
export declare namespace GetRequest {
    const codec: () => Codec<GetRequest>;
    interface GetRequestNameFieldEvent {
        field: '$.name';
        value: string;
    }
    function encode(obj: Partial<GetRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetRequest>): GetRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetRequest>): Generator<GetRequestNameFieldEvent>;
}
export interface GetManyRequest {
    names: string[];
}
export declare namespace GetManyRequest {
    const codec: () => Codec<GetManyRequest>;
    interface GetManyRequestNamesFieldEvent {
        field: '$.names[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<GetManyRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetManyRequest>): GetManyRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetManyRequest>): Generator<GetManyRequestNamesFieldEvent>;
}
export interface MayWriteRequest {
}
export declare namespace MayWriteRequest {
    const codec: () => Codec<MayWriteRequest>;
    function encode(obj: Partial<MayWriteRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MayWriteRequest>): MayWriteRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MayWriteRequest>): Generator<{}>;
}
export interface ListRequest {
    prefix: string;
    pageSize: number;
    pageToken: string;
}
export declare namespace ListRequest {
    const codec: () => Codec<ListRequest>;
    interface ListRequestPrefixFieldEvent {
        field: '$.prefix';
        value: string;
    }
    interface ListRequestPageSizeFieldEvent {
        field: '$.pageSize';
        value: number;
    }
    interface ListRequestPageTokenFieldEvent {
        field: '$.pageToken';
        value: string;
    }
    function encode(obj: Partial<ListRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ListRequest>): ListRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ListRequest>): Generator<ListRequestPrefixFieldEvent | ListRequestPageSizeFieldEvent | ListRequestPageTokenFieldEvent>;
}
export interface DeleteRequest {
    name: string;
    expectedRevision?: bigint;
}
export declare namespace DeleteRequest {
    const codec: () => Codec<DeleteRequest>;
    interface DeleteRequestNameFieldEvent {
        field: '$.name';
        value: string;
    }
    interface DeleteRequestExpectedRevisionFieldEvent {
        field: '$.expectedRevision';
        value: bigint;
    }
    function encode(obj: Partial<DeleteRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DeleteRequest>): DeleteRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DeleteRequest>): Generator<DeleteRequestNameFieldEvent | DeleteRequestExpectedRevisionFieldEvent>;
}
export interface JoinRequest {
    memberName: string;
    peerUrls: string[];
}
export declare namespace JoinRequest {
    const codec: () => Codec<JoinRequest>;
    interface JoinRequestMemberNameFieldEvent {
        field: '$.memberName';
        value: string;
    }
    interface JoinRequestPeerUrlsFieldEvent {
        field: '$.peerUrls[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<JoinRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<JoinRequest>): JoinRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<JoinRequest>): Generator<JoinRequestMemberNameFieldEvent | JoinRequestPeerUrlsFieldEvent>;
}
export interface Request {
    add?: AddRequest;
    get?: GetRequest;
    list?: ListRequest;
    delete?: DeleteRequest;
    join?: JoinRequest;
    getMany?: GetManyRequest;
    mayWrite?: MayWriteRequest;
}
export declare namespace Request {
    const codec: () => Codec<Request>;
    interface RequestAddRecordNameFieldEvent {
        field: '$.add.record.name';
        value: string;
    }
    interface RequestAddRecordContentHashFieldEvent {
        field: '$.add.record.contentHash';
        value: string;
    }
    interface RequestAddRecordImageFieldEvent {
        field: '$.add.record.image';
        value: string;
    }
    interface RequestAddRecordSoftRttMsFieldEvent {
        field: '$.add.record.softRttMs';
        value: number;
    }
    interface RequestAddRecordHardRttMsFieldEvent {
        field: '$.add.record.hardRttMs';
        value: number;
    }
    interface RequestAddRecordCpuFieldEvent {
        field: '$.add.record.cpu';
        value: number;
    }
    interface RequestAddRecordMemoryMbFieldEvent {
        field: '$.add.record.memoryMb';
        value: number;
    }
    interface RequestAddRecordProxyClientModeFieldEvent {
        field: '$.add.record.proxyClientMode';
        value: boolean;
    }
    interface RequestAddRecordCreatedAtFieldEvent {
        field: '$.add.record.createdAt';
        value: string;
    }
    interface RequestAddRecordUpdatedAtFieldEvent {
        field: '$.add.record.updatedAt';
        value: string;
    }
    interface RequestAddRecordRevisionFieldEvent {
        field: '$.add.record.revision';
        value: bigint;
    }
    interface RequestAddExpectedRevisionFieldEvent {
        field: '$.add.expectedRevision';
        value: bigint;
    }
    interface RequestGetNameFieldEvent {
        field: '$.get.name';
        value: string;
    }
    interface RequestListPrefixFieldEvent {
        field: '$.list.prefix';
        value: string;
    }
    interface RequestListPageSizeFieldEvent {
        field: '$.list.pageSize';
        value: number;
    }
    interface RequestListPageTokenFieldEvent {
        field: '$.list.pageToken';
        value: string;
    }
    interface RequestDeleteNameFieldEvent {
        field: '$.delete.name';
        value: string;
    }
    interface RequestDeleteExpectedRevisionFieldEvent {
        field: '$.delete.expectedRevision';
        value: bigint;
    }
    interface RequestJoinMemberNameFieldEvent {
        field: '$.join.memberName';
        value: string;
    }
    interface RequestJoinPeerUrlsFieldEvent {
        field: '$.join.peerUrls[]';
        index: number;
        value: string;
    }
    interface RequestGetManyNamesFieldEvent {
        field: '$.getMany.names[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<Request>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Request>): Request;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Request>): Generator<RequestAddRecordNameFieldEvent | RequestAddRecordContentHashFieldEvent | RequestAddRecordImageFieldEvent | RequestAddRecordSoftRttMsFieldEvent | RequestAddRecordHardRttMsFieldEvent | RequestAddRecordCpuFieldEvent | RequestAddRecordMemoryMbFieldEvent | RequestAddRecordProxyClientModeFieldEvent | RequestAddRecordCreatedAtFieldEvent | RequestAddRecordUpdatedAtFieldEvent | RequestAddRecordRevisionFieldEvent | RequestAddExpectedRevisionFieldEvent | RequestGetNameFieldEvent | RequestListPrefixFieldEvent | RequestListPageSizeFieldEvent | RequestListPageTokenFieldEvent | RequestDeleteNameFieldEvent | RequestDeleteExpectedRevisionFieldEvent | RequestJoinMemberNameFieldEvent | RequestJoinPeerUrlsFieldEvent | RequestGetManyNamesFieldEvent>;
}
export interface ListResponse {
    records: ServiceRecord[];
    nextPageToken: string;
}
export declare namespace ListResponse {
    const codec: () => Codec<ListResponse>;
    interface ListResponseRecordsNameFieldEvent {
        field: '$.records[].name';
        value: string;
        index: number;
    }
    interface ListResponseRecordsContentHashFieldEvent {
        field: '$.records[].contentHash';
        value: string;
        index: number;
    }
    interface ListResponseRecordsImageFieldEvent {
        field: '$.records[].image';
        value: string;
        index: number;
    }
    interface ListResponseRecordsSoftRttMsFieldEvent {
        field: '$.records[].softRttMs';
        value: number;
        index: number;
    }
    interface ListResponseRecordsHardRttMsFieldEvent {
        field: '$.records[].hardRttMs';
        value: number;
        index: number;
    }
    interface ListResponseRecordsCpuFieldEvent {
        field: '$.records[].cpu';
        value: number;
        index: number;
    }
    interface ListResponseRecordsMemoryMbFieldEvent {
        field: '$.records[].memoryMb';
        value: number;
        index: number;
    }
    interface ListResponseRecordsProxyClientModeFieldEvent {
        field: '$.records[].proxyClientMode';
        value: boolean;
        index: number;
    }
    interface ListResponseRecordsCreatedAtFieldEvent {
        field: '$.records[].createdAt';
        value: string;
        index: number;
    }
    interface ListResponseRecordsUpdatedAtFieldEvent {
        field: '$.records[].updatedAt';
        value: string;
        index: number;
    }
    interface ListResponseRecordsRevisionFieldEvent {
        field: '$.records[].revision';
        value: bigint;
        index: number;
    }
    interface ListResponseNextPageTokenFieldEvent {
        field: '$.nextPageToken';
        value: string;
    }
    function encode(obj: Partial<ListResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ListResponse>): ListResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ListResponse>): Generator<ListResponseRecordsNameFieldEvent | ListResponseRecordsContentHashFieldEvent | ListResponseRecordsImageFieldEvent | ListResponseRecordsSoftRttMsFieldEvent | ListResponseRecordsHardRttMsFieldEvent | ListResponseRecordsCpuFieldEvent | ListResponseRecordsMemoryMbFieldEvent | ListResponseRecordsProxyClientModeFieldEvent | ListResponseRecordsCreatedAtFieldEvent | ListResponseRecordsUpdatedAtFieldEvent | ListResponseRecordsRevisionFieldEvent | ListResponseNextPageTokenFieldEvent>;
}
export interface GetResult {
    record?: ServiceRecord;
    failure?: Failure;
}
export declare namespace GetResult {
    const codec: () => Codec<GetResult>;
    interface GetResultRecordNameFieldEvent {
        field: '$.record.name';
        value: string;
    }
    interface GetResultRecordContentHashFieldEvent {
        field: '$.record.contentHash';
        value: string;
    }
    interface GetResultRecordImageFieldEvent {
        field: '$.record.image';
        value: string;
    }
    interface GetResultRecordSoftRttMsFieldEvent {
        field: '$.record.softRttMs';
        value: number;
    }
    interface GetResultRecordHardRttMsFieldEvent {
        field: '$.record.hardRttMs';
        value: number;
    }
    interface GetResultRecordCpuFieldEvent {
        field: '$.record.cpu';
        value: number;
    }
    interface GetResultRecordMemoryMbFieldEvent {
        field: '$.record.memoryMb';
        value: number;
    }
    interface GetResultRecordProxyClientModeFieldEvent {
        field: '$.record.proxyClientMode';
        value: boolean;
    }
    interface GetResultRecordCreatedAtFieldEvent {
        field: '$.record.createdAt';
        value: string;
    }
    interface GetResultRecordUpdatedAtFieldEvent {
        field: '$.record.updatedAt';
        value: string;
    }
    interface GetResultRecordRevisionFieldEvent {
        field: '$.record.revision';
        value: bigint;
    }
    interface GetResultFailureCodeFieldEvent {
        field: '$.failure.code';
        value: Failure.Code;
    }
    interface GetResultFailureMessageFieldEvent {
        field: '$.failure.message';
        value: string;
    }
    function encode(obj: Partial<GetResult>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetResult>): GetResult;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetResult>): Generator<GetResultRecordNameFieldEvent | GetResultRecordContentHashFieldEvent | GetResultRecordImageFieldEvent | GetResultRecordSoftRttMsFieldEvent | GetResultRecordHardRttMsFieldEvent | GetResultRecordCpuFieldEvent | GetResultRecordMemoryMbFieldEvent | GetResultRecordProxyClientModeFieldEvent | GetResultRecordCreatedAtFieldEvent | GetResultRecordUpdatedAtFieldEvent | GetResultRecordRevisionFieldEvent | GetResultFailureCodeFieldEvent | GetResultFailureMessageFieldEvent>;
}
export interface GetManyResponse {
    results: GetResult[];
}
export declare namespace GetManyResponse {
    const codec: () => Codec<GetManyResponse>;
    interface GetManyResponseResultsRecordNameFieldEvent {
        field: '$.results[].record.name';
        value: string;
        index: number;
    }
    interface GetManyResponseResultsRecordContentHashFieldEvent {
        field: '$.results[].record.contentHash';
        value: string;
        index: number;
    }
    interface GetManyResponseResultsRecordImageFieldEvent {
        field: '$.results[].record.image';
        value: string;
        index: number;
    }
    interface GetManyResponseResultsRecordSoftRttMsFieldEvent {
        field: '$.results[].record.softRttMs';
        value: number;
        index: number;
    }
    interface GetManyResponseResultsRecordHardRttMsFieldEvent {
        field: '$.results[].record.hardRttMs';
        value: number;
        index: number;
    }
    interface GetManyResponseResultsRecordCpuFieldEvent {
        field: '$.results[].record.cpu';
        value: number;
        index: number;
    }
    interface GetManyResponseResultsRecordMemoryMbFieldEvent {
        field: '$.results[].record.memoryMb';
        value: number;
        index: number;
    }
    interface GetManyResponseResultsRecordProxyClientModeFieldEvent {
        field: '$.results[].record.proxyClientMode';
        value: boolean;
        index: number;
    }
    interface GetManyResponseResultsRecordCreatedAtFieldEvent {
        field: '$.results[].record.createdAt';
        value: string;
        index: number;
    }
    interface GetManyResponseResultsRecordUpdatedAtFieldEvent {
        field: '$.results[].record.updatedAt';
        value: string;
        index: number;
    }
    interface GetManyResponseResultsRecordRevisionFieldEvent {
        field: '$.results[].record.revision';
        value: bigint;
        index: number;
    }
    interface GetManyResponseResultsFailureCodeFieldEvent {
        field: '$.results[].failure.code';
        value: Failure.Code;
        index: number;
    }
    interface GetManyResponseResultsFailureMessageFieldEvent {
        field: '$.results[].failure.message';
        value: string;
        index: number;
    }
    function encode(obj: Partial<GetManyResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetManyResponse>): GetManyResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetManyResponse>): Generator<GetManyResponseResultsRecordNameFieldEvent | GetManyResponseResultsRecordContentHashFieldEvent | GetManyResponseResultsRecordImageFieldEvent | GetManyResponseResultsRecordSoftRttMsFieldEvent | GetManyResponseResultsRecordHardRttMsFieldEvent | GetManyResponseResultsRecordCpuFieldEvent | GetManyResponseResultsRecordMemoryMbFieldEvent | GetManyResponseResultsRecordProxyClientModeFieldEvent | GetManyResponseResultsRecordCreatedAtFieldEvent | GetManyResponseResultsRecordUpdatedAtFieldEvent | GetManyResponseResultsRecordRevisionFieldEvent | GetManyResponseResultsFailureCodeFieldEvent | GetManyResponseResultsFailureMessageFieldEvent>;
}
export interface MayWriteResponse {
}
export declare namespace MayWriteResponse {
    const codec: () => Codec<MayWriteResponse>;
    function encode(obj: Partial<MayWriteResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MayWriteResponse>): MayWriteResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MayWriteResponse>): Generator<{}>;
}
export interface DeleteResponse {
    revision: bigint;
}
export declare namespace DeleteResponse {
    const codec: () => Codec<DeleteResponse>;
    interface DeleteResponseRevisionFieldEvent {
        field: '$.revision';
        value: bigint;
    }
    function encode(obj: Partial<DeleteResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DeleteResponse>): DeleteResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DeleteResponse>): Generator<DeleteResponseRevisionFieldEvent>;
}
export interface JoinResponse {
    initialCluster: string;
    clientUrls: string[];
}
export declare namespace JoinResponse {
    const codec: () => Codec<JoinResponse>;
    interface JoinResponseInitialClusterFieldEvent {
        field: '$.initialCluster';
        value: string;
    }
    interface JoinResponseClientUrlsFieldEvent {
        field: '$.clientUrls[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<JoinResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<JoinResponse>): JoinResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<JoinResponse>): Generator<JoinResponseInitialClusterFieldEvent | JoinResponseClientUrlsFieldEvent>;
}
export interface Response {
    record?: ServiceRecord;
    list?: ListResponse;
    delete?: DeleteResponse;
    join?: JoinResponse;
    failure?: Failure;
    getMany?: GetManyResponse;
    mayWrite?: MayWriteResponse;
}
export declare namespace Response {
    const codec: () => Codec<Response>;
    interface ResponseRecordNameFieldEvent {
        field: '$.record.name';
        value: string;
    }
    interface ResponseRecordContentHashFieldEvent {
        field: '$.record.contentHash';
        value: string;
    }
    interface ResponseRecordImageFieldEvent {
        field: '$.record.image';
        value: string;
    }
    interface ResponseRecordSoftRttMsFieldEvent {
        field: '$.record.softRttMs';
        value: number;
    }
    interface ResponseRecordHardRttMsFieldEvent {
        field: '$.record.hardRttMs';
        value: number;
    }
    interface ResponseRecordCpuFieldEvent {
        field: '$.record.cpu';
        value: number;
    }
    interface ResponseRecordMemoryMbFieldEvent {
        field: '$.record.memoryMb';
        value: number;
    }
    interface ResponseRecordProxyClientModeFieldEvent {
        field: '$.record.proxyClientMode';
        value: boolean;
    }
    interface ResponseRecordCreatedAtFieldEvent {
        field: '$.record.createdAt';
        value: string;
    }
    interface ResponseRecordUpdatedAtFieldEvent {
        field: '$.record.updatedAt';
        value: string;
    }
    interface ResponseRecordRevisionFieldEvent {
        field: '$.record.revision';
        value: bigint;
    }
    interface ResponseListRecordsNameFieldEvent {
        field: '$.list.records[].name';
        value: string;
        index: number;
    }
    interface ResponseListRecordsContentHashFieldEvent {
        field: '$.list.records[].contentHash';
        value: string;
        index: number;
    }
    interface ResponseListRecordsImageFieldEvent {
        field: '$.list.records[].image';
        value: string;
        index: number;
    }
    interface ResponseListRecordsSoftRttMsFieldEvent {
        field: '$.list.records[].softRttMs';
        value: number;
        index: number;
    }
    interface ResponseListRecordsHardRttMsFieldEvent {
        field: '$.list.records[].hardRttMs';
        value: number;
        index: number;
    }
    interface ResponseListRecordsCpuFieldEvent {
        field: '$.list.records[].cpu';
        value: number;
        index: number;
    }
    interface ResponseListRecordsMemoryMbFieldEvent {
        field: '$.list.records[].memoryMb';
        value: number;
        index: number;
    }
    interface ResponseListRecordsProxyClientModeFieldEvent {
        field: '$.list.records[].proxyClientMode';
        value: boolean;
        index: number;
    }
    interface ResponseListRecordsCreatedAtFieldEvent {
        field: '$.list.records[].createdAt';
        value: string;
        index: number;
    }
    interface ResponseListRecordsUpdatedAtFieldEvent {
        field: '$.list.records[].updatedAt';
        value: string;
        index: number;
    }
    interface ResponseListRecordsRevisionFieldEvent {
        field: '$.list.records[].revision';
        value: bigint;
        index: number;
    }
    interface ResponseListNextPageTokenFieldEvent {
        field: '$.list.nextPageToken';
        value: string;
    }
    interface ResponseDeleteRevisionFieldEvent {
        field: '$.delete.revision';
        value: bigint;
    }
    interface ResponseJoinInitialClusterFieldEvent {
        field: '$.join.initialCluster';
        value: string;
    }
    interface ResponseJoinClientUrlsFieldEvent {
        field: '$.join.clientUrls[]';
        index: number;
        value: string;
    }
    interface ResponseFailureCodeFieldEvent {
        field: '$.failure.code';
        value: Failure.Code;
    }
    interface ResponseFailureMessageFieldEvent {
        field: '$.failure.message';
        value: string;
    }
    interface ResponseGetManyResultsRecordNameFieldEvent {
        field: '$.getMany.results[].record.name';
        value: string;
        index: number;
    }
    interface ResponseGetManyResultsRecordContentHashFieldEvent {
        field: '$.getMany.results[].record.contentHash';
        value: string;
        index: number;
    }
    interface ResponseGetManyResultsRecordImageFieldEvent {
        field: '$.getMany.results[].record.image';
        value: string;
        index: number;
    }
    interface ResponseGetManyResultsRecordSoftRttMsFieldEvent {
        field: '$.getMany.results[].record.softRttMs';
        value: number;
        index: number;
    }
    interface ResponseGetManyResultsRecordHardRttMsFieldEvent {
        field: '$.getMany.results[].record.hardRttMs';
        value: number;
        index: number;
    }
    interface ResponseGetManyResultsRecordCpuFieldEvent {
        field: '$.getMany.results[].record.cpu';
        value: number;
        index: number;
    }
    interface ResponseGetManyResultsRecordMemoryMbFieldEvent {
        field: '$.getMany.results[].record.memoryMb';
        value: number;
        index: number;
    }
    interface ResponseGetManyResultsRecordProxyClientModeFieldEvent {
        field: '$.getMany.results[].record.proxyClientMode';
        value: boolean;
        index: number;
    }
    interface ResponseGetManyResultsRecordCreatedAtFieldEvent {
        field: '$.getMany.results[].record.createdAt';
        value: string;
        index: number;
    }
    interface ResponseGetManyResultsRecordUpdatedAtFieldEvent {
        field: '$.getMany.results[].record.updatedAt';
        value: string;
        index: number;
    }
    interface ResponseGetManyResultsRecordRevisionFieldEvent {
        field: '$.getMany.results[].record.revision';
        value: bigint;
        index: number;
    }
    interface ResponseGetManyResultsFailureCodeFieldEvent {
        field: '$.getMany.results[].failure.code';
        value: Failure.Code;
        index: number;
    }
    interface ResponseGetManyResultsFailureMessageFieldEvent {
        field: '$.getMany.results[].failure.message';
        value: string;
        index: number;
    }
    function encode(obj: Partial<Response>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Response>): Response;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Response>): Generator<ResponseRecordNameFieldEvent | ResponseRecordContentHashFieldEvent | ResponseRecordImageFieldEvent | ResponseRecordSoftRttMsFieldEvent | ResponseRecordHardRttMsFieldEvent | ResponseRecordCpuFieldEvent | ResponseRecordMemoryMbFieldEvent | ResponseRecordProxyClientModeFieldEvent | ResponseRecordCreatedAtFieldEvent | ResponseRecordUpdatedAtFieldEvent | ResponseRecordRevisionFieldEvent | ResponseListRecordsNameFieldEvent | ResponseListRecordsContentHashFieldEvent | ResponseListRecordsImageFieldEvent | ResponseListRecordsSoftRttMsFieldEvent | ResponseListRecordsHardRttMsFieldEvent | ResponseListRecordsCpuFieldEvent | ResponseListRecordsMemoryMbFieldEvent | ResponseListRecordsProxyClientModeFieldEvent | ResponseListRecordsCreatedAtFieldEvent | ResponseListRecordsUpdatedAtFieldEvent | ResponseListRecordsRevisionFieldEvent | ResponseListNextPageTokenFieldEvent | ResponseDeleteRevisionFieldEvent | ResponseJoinInitialClusterFieldEvent | ResponseJoinClientUrlsFieldEvent | ResponseFailureCodeFieldEvent | ResponseFailureMessageFieldEvent | ResponseGetManyResultsRecordNameFieldEvent | ResponseGetManyResultsRecordContentHashFieldEvent | ResponseGetManyResultsRecordImageFieldEvent | ResponseGetManyResultsRecordSoftRttMsFieldEvent | ResponseGetManyResultsRecordHardRttMsFieldEvent | ResponseGetManyResultsRecordCpuFieldEvent | ResponseGetManyResultsRecordMemoryMbFieldEvent | ResponseGetManyResultsRecordProxyClientModeFieldEvent | ResponseGetManyResultsRecordCreatedAtFieldEvent | ResponseGetManyResultsRecordUpdatedAtFieldEvent | ResponseGetManyResultsRecordRevisionFieldEvent | ResponseGetManyResultsFailureCodeFieldEvent | ResponseGetManyResultsFailureMessageFieldEvent>;
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
