/* eslint-disable require-yield */
import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
export var ServiceRecord;
(function (ServiceRecord) {
    let _codec;
    ServiceRecord.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.name != null && obj.name !== '')) {
                    w.uint32(10);
                    w.string(obj.name);
                }
                if ((obj.contentHash != null && obj.contentHash !== '')) {
                    w.uint32(18);
                    w.string(obj.contentHash);
                }
                if ((obj.image != null && obj.image !== '')) {
                    w.uint32(26);
                    w.string(obj.image);
                }
                if ((obj.softRttMs != null && obj.softRttMs !== 0)) {
                    w.uint32(33);
                    w.double(obj.softRttMs);
                }
                if ((obj.hardRttMs != null && obj.hardRttMs !== 0)) {
                    w.uint32(41);
                    w.double(obj.hardRttMs);
                }
                if ((obj.cpu != null && obj.cpu !== 0)) {
                    w.uint32(49);
                    w.double(obj.cpu);
                }
                if ((obj.memoryMb != null && obj.memoryMb !== 0)) {
                    w.uint32(56);
                    w.uint32(obj.memoryMb);
                }
                if ((obj.proxyClientMode != null && obj.proxyClientMode !== false)) {
                    w.uint32(64);
                    w.bool(obj.proxyClientMode);
                }
                if ((obj.createdAt != null && obj.createdAt !== '')) {
                    w.uint32(74);
                    w.string(obj.createdAt);
                }
                if ((obj.updatedAt != null && obj.updatedAt !== '')) {
                    w.uint32(82);
                    w.string(obj.updatedAt);
                }
                if ((obj.revision != null && obj.revision !== 0n)) {
                    w.uint32(88);
                    w.uint64(obj.revision);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    name: '',
                    contentHash: '',
                    image: '',
                    softRttMs: 0,
                    hardRttMs: 0,
                    cpu: 0,
                    memoryMb: 0,
                    proxyClientMode: false,
                    createdAt: '',
                    updatedAt: '',
                    revision: 0n
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.name = reader.string();
                            break;
                        }
                        case 2: {
                            obj.contentHash = reader.string();
                            break;
                        }
                        case 3: {
                            obj.image = reader.string();
                            break;
                        }
                        case 4: {
                            obj.softRttMs = reader.double();
                            break;
                        }
                        case 5: {
                            obj.hardRttMs = reader.double();
                            break;
                        }
                        case 6: {
                            obj.cpu = reader.double();
                            break;
                        }
                        case 7: {
                            obj.memoryMb = reader.uint32();
                            break;
                        }
                        case 8: {
                            obj.proxyClientMode = reader.bool();
                            break;
                        }
                        case 9: {
                            obj.createdAt = reader.string();
                            break;
                        }
                        case 10: {
                            obj.updatedAt = reader.string();
                            break;
                        }
                        case 11: {
                            obj.revision = reader.uint64();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.name`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.contentHash`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.image`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.softRttMs`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.hardRttMs`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.cpu`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 7: {
                            yield {
                                field: `${prefix}.memoryMb`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 8: {
                            yield {
                                field: `${prefix}.proxyClientMode`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 9: {
                            yield {
                                field: `${prefix}.createdAt`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 10: {
                            yield {
                                field: `${prefix}.updatedAt`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 11: {
                            yield {
                                field: `${prefix}.revision`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, ServiceRecord.codec());
    }
    ServiceRecord.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ServiceRecord.codec(), opts);
    }
    ServiceRecord.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ServiceRecord.codec(), opts);
    }
    ServiceRecord.stream = stream;
})(ServiceRecord || (ServiceRecord = {}));
export var AddRequest;
(function (AddRequest) {
    let _codec;
    AddRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.record != null) {
                    w.uint32(10);
                    ServiceRecord.codec().encode(obj.record, w);
                }
                if (obj.expectedRevision != null) {
                    w.uint32(16);
                    w.uint64(obj.expectedRevision);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.record = ServiceRecord.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            obj.expectedRevision = reader.uint64();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield* ServiceRecord.codec().stream(reader, reader.uint32(), `${prefix}.record`, {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.expectedRevision`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, AddRequest.codec());
    }
    AddRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, AddRequest.codec(), opts);
    }
    AddRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, AddRequest.codec(), opts);
    }
    AddRequest.stream = stream;
})(AddRequest || (AddRequest = {}));
export var GetRequest;
(function (GetRequest) {
    let _codec;
    GetRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.name != null && obj.name !== '')) {
                    w.uint32(10);
                    w.string(obj.name);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    name: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.name = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.name`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetRequest.codec());
    }
    GetRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetRequest.codec(), opts);
    }
    GetRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetRequest.codec(), opts);
    }
    GetRequest.stream = stream;
})(GetRequest || (GetRequest = {}));
export var GetManyRequest;
(function (GetManyRequest) {
    let _codec;
    GetManyRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.names != null && obj.names.length > 0) {
                    for (const value of obj.names) {
                        w.uint32(10);
                        w.string(value);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    names: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.names != null && obj.names.length === opts.limits.names) {
                                throw new MaxLengthError('Decode error - repeated field "names" had too many elements');
                            }
                            obj.names.push(reader.string());
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    names: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.names != null && obj.names === opts.limits.names) {
                                throw new MaxLengthError('Streaming decode error - repeated field "names" had too many elements');
                            }
                            yield {
                                field: `${prefix}.names[]`,
                                index: obj.names,
                                value: reader.string()
                            };
                            obj.names++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetManyRequest.codec());
    }
    GetManyRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetManyRequest.codec(), opts);
    }
    GetManyRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetManyRequest.codec(), opts);
    }
    GetManyRequest.stream = stream;
})(GetManyRequest || (GetManyRequest = {}));
export var MayWriteRequest;
(function (MayWriteRequest) {
    let _codec;
    MayWriteRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, MayWriteRequest.codec());
    }
    MayWriteRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, MayWriteRequest.codec(), opts);
    }
    MayWriteRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, MayWriteRequest.codec(), opts);
    }
    MayWriteRequest.stream = stream;
})(MayWriteRequest || (MayWriteRequest = {}));
export var ListRequest;
(function (ListRequest) {
    let _codec;
    ListRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.prefix != null && obj.prefix !== '')) {
                    w.uint32(10);
                    w.string(obj.prefix);
                }
                if ((obj.pageSize != null && obj.pageSize !== 0)) {
                    w.uint32(16);
                    w.uint32(obj.pageSize);
                }
                if ((obj.pageToken != null && obj.pageToken !== '')) {
                    w.uint32(26);
                    w.string(obj.pageToken);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    prefix: '',
                    pageSize: 0,
                    pageToken: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.prefix = reader.string();
                            break;
                        }
                        case 2: {
                            obj.pageSize = reader.uint32();
                            break;
                        }
                        case 3: {
                            obj.pageToken = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.prefix`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.pageSize`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.pageToken`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, ListRequest.codec());
    }
    ListRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ListRequest.codec(), opts);
    }
    ListRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ListRequest.codec(), opts);
    }
    ListRequest.stream = stream;
})(ListRequest || (ListRequest = {}));
export var DeleteRequest;
(function (DeleteRequest) {
    let _codec;
    DeleteRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.name != null && obj.name !== '')) {
                    w.uint32(10);
                    w.string(obj.name);
                }
                if (obj.expectedRevision != null) {
                    w.uint32(16);
                    w.uint64(obj.expectedRevision);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    name: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.name = reader.string();
                            break;
                        }
                        case 2: {
                            obj.expectedRevision = reader.uint64();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.name`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.expectedRevision`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, DeleteRequest.codec());
    }
    DeleteRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, DeleteRequest.codec(), opts);
    }
    DeleteRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, DeleteRequest.codec(), opts);
    }
    DeleteRequest.stream = stream;
})(DeleteRequest || (DeleteRequest = {}));
export var JoinRequest;
(function (JoinRequest) {
    let _codec;
    JoinRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.memberName != null && obj.memberName !== '')) {
                    w.uint32(10);
                    w.string(obj.memberName);
                }
                if (obj.peerUrls != null && obj.peerUrls.length > 0) {
                    for (const value of obj.peerUrls) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    memberName: '',
                    peerUrls: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.memberName = reader.string();
                            break;
                        }
                        case 2: {
                            if (opts.limits?.peerUrls != null && obj.peerUrls.length === opts.limits.peerUrls) {
                                throw new MaxLengthError('Decode error - repeated field "peerUrls" had too many elements');
                            }
                            obj.peerUrls.push(reader.string());
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    peerUrls: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.memberName`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.peerUrls != null && obj.peerUrls === opts.limits.peerUrls) {
                                throw new MaxLengthError('Streaming decode error - repeated field "peerUrls" had too many elements');
                            }
                            yield {
                                field: `${prefix}.peerUrls[]`,
                                index: obj.peerUrls,
                                value: reader.string()
                            };
                            obj.peerUrls++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, JoinRequest.codec());
    }
    JoinRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, JoinRequest.codec(), opts);
    }
    JoinRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, JoinRequest.codec(), opts);
    }
    JoinRequest.stream = stream;
})(JoinRequest || (JoinRequest = {}));
export var Request;
(function (Request) {
    let _codec;
    Request.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.add != null) {
                    w.uint32(10);
                    AddRequest.codec().encode(obj.add, w);
                }
                if (obj.get != null) {
                    w.uint32(18);
                    GetRequest.codec().encode(obj.get, w);
                }
                if (obj.list != null) {
                    w.uint32(26);
                    ListRequest.codec().encode(obj.list, w);
                }
                if (obj.delete != null) {
                    w.uint32(34);
                    DeleteRequest.codec().encode(obj.delete, w);
                }
                if (obj.join != null) {
                    w.uint32(42);
                    JoinRequest.codec().encode(obj.join, w);
                }
                if (obj.getMany != null) {
                    w.uint32(50);
                    GetManyRequest.codec().encode(obj.getMany, w);
                }
                if (obj.mayWrite != null) {
                    w.uint32(58);
                    MayWriteRequest.codec().encode(obj.mayWrite, w);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.add = AddRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.add
                            });
                            break;
                        }
                        case 2: {
                            obj.get = GetRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.get
                            });
                            break;
                        }
                        case 3: {
                            obj.list = ListRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.list
                            });
                            break;
                        }
                        case 4: {
                            obj.delete = DeleteRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.delete
                            });
                            break;
                        }
                        case 5: {
                            obj.join = JoinRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.join
                            });
                            break;
                        }
                        case 6: {
                            obj.getMany = GetManyRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.getMany
                            });
                            break;
                        }
                        case 7: {
                            obj.mayWrite = MayWriteRequest.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.mayWrite
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield* AddRequest.codec().stream(reader, reader.uint32(), `${prefix}.add`, {
                                limits: opts.limits?.add
                            });
                            break;
                        }
                        case 2: {
                            yield* GetRequest.codec().stream(reader, reader.uint32(), `${prefix}.get`, {
                                limits: opts.limits?.get
                            });
                            break;
                        }
                        case 3: {
                            yield* ListRequest.codec().stream(reader, reader.uint32(), `${prefix}.list`, {
                                limits: opts.limits?.list
                            });
                            break;
                        }
                        case 4: {
                            yield* DeleteRequest.codec().stream(reader, reader.uint32(), `${prefix}.delete`, {
                                limits: opts.limits?.delete
                            });
                            break;
                        }
                        case 5: {
                            yield* JoinRequest.codec().stream(reader, reader.uint32(), `${prefix}.join`, {
                                limits: opts.limits?.join
                            });
                            break;
                        }
                        case 6: {
                            yield* GetManyRequest.codec().stream(reader, reader.uint32(), `${prefix}.getMany`, {
                                limits: opts.limits?.getMany
                            });
                            break;
                        }
                        case 7: {
                            yield* MayWriteRequest.codec().stream(reader, reader.uint32(), `${prefix}.mayWrite`, {
                                limits: opts.limits?.mayWrite
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Request.codec());
    }
    Request.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Request.codec(), opts);
    }
    Request.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Request.codec(), opts);
    }
    Request.stream = stream;
})(Request || (Request = {}));
export var ListResponse;
(function (ListResponse) {
    let _codec;
    ListResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.records != null && obj.records.length > 0) {
                    for (const value of obj.records) {
                        w.uint32(10);
                        ServiceRecord.codec().encode(value, w);
                    }
                }
                if ((obj.nextPageToken != null && obj.nextPageToken !== '')) {
                    w.uint32(18);
                    w.string(obj.nextPageToken);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    records: [],
                    nextPageToken: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.records != null && obj.records.length === opts.limits.records) {
                                throw new MaxLengthError('Decode error - repeated field "records" had too many elements');
                            }
                            obj.records.push(ServiceRecord.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.records$
                            }));
                            break;
                        }
                        case 2: {
                            obj.nextPageToken = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    records: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.records != null && obj.records === opts.limits.records) {
                                throw new MaxLengthError('Streaming decode error - repeated field "records" had too many elements');
                            }
                            for (const evt of ServiceRecord.codec().stream(reader, reader.uint32(), `${prefix}.records[]`, {
                                limits: opts.limits?.records$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.records
                                };
                            }
                            obj.records++;
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.nextPageToken`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, ListResponse.codec());
    }
    ListResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ListResponse.codec(), opts);
    }
    ListResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ListResponse.codec(), opts);
    }
    ListResponse.stream = stream;
})(ListResponse || (ListResponse = {}));
export var GetResult;
(function (GetResult) {
    let _codec;
    GetResult.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.record != null) {
                    w.uint32(10);
                    ServiceRecord.codec().encode(obj.record, w);
                }
                if (obj.failure != null) {
                    w.uint32(18);
                    Failure.codec().encode(obj.failure, w);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.record = ServiceRecord.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            obj.failure = Failure.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield* ServiceRecord.codec().stream(reader, reader.uint32(), `${prefix}.record`, {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            yield* Failure.codec().stream(reader, reader.uint32(), `${prefix}.failure`, {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetResult.codec());
    }
    GetResult.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetResult.codec(), opts);
    }
    GetResult.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetResult.codec(), opts);
    }
    GetResult.stream = stream;
})(GetResult || (GetResult = {}));
export var GetManyResponse;
(function (GetManyResponse) {
    let _codec;
    GetManyResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.results != null && obj.results.length > 0) {
                    for (const value of obj.results) {
                        w.uint32(10);
                        GetResult.codec().encode(value, w);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    results: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.results != null && obj.results.length === opts.limits.results) {
                                throw new MaxLengthError('Decode error - repeated field "results" had too many elements');
                            }
                            obj.results.push(GetResult.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.results$
                            }));
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    results: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.results != null && obj.results === opts.limits.results) {
                                throw new MaxLengthError('Streaming decode error - repeated field "results" had too many elements');
                            }
                            for (const evt of GetResult.codec().stream(reader, reader.uint32(), `${prefix}.results[]`, {
                                limits: opts.limits?.results$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.results
                                };
                            }
                            obj.results++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetManyResponse.codec());
    }
    GetManyResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetManyResponse.codec(), opts);
    }
    GetManyResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetManyResponse.codec(), opts);
    }
    GetManyResponse.stream = stream;
})(GetManyResponse || (GetManyResponse = {}));
export var MayWriteResponse;
(function (MayWriteResponse) {
    let _codec;
    MayWriteResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, MayWriteResponse.codec());
    }
    MayWriteResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, MayWriteResponse.codec(), opts);
    }
    MayWriteResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, MayWriteResponse.codec(), opts);
    }
    MayWriteResponse.stream = stream;
})(MayWriteResponse || (MayWriteResponse = {}));
export var DeleteResponse;
(function (DeleteResponse) {
    let _codec;
    DeleteResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.revision != null && obj.revision !== 0n)) {
                    w.uint32(8);
                    w.uint64(obj.revision);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    revision: 0n
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.revision = reader.uint64();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.revision`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, DeleteResponse.codec());
    }
    DeleteResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, DeleteResponse.codec(), opts);
    }
    DeleteResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, DeleteResponse.codec(), opts);
    }
    DeleteResponse.stream = stream;
})(DeleteResponse || (DeleteResponse = {}));
export var JoinResponse;
(function (JoinResponse) {
    let _codec;
    JoinResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.initialCluster != null && obj.initialCluster !== '')) {
                    w.uint32(10);
                    w.string(obj.initialCluster);
                }
                if (obj.clientUrls != null && obj.clientUrls.length > 0) {
                    for (const value of obj.clientUrls) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    initialCluster: '',
                    clientUrls: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.initialCluster = reader.string();
                            break;
                        }
                        case 2: {
                            if (opts.limits?.clientUrls != null && obj.clientUrls.length === opts.limits.clientUrls) {
                                throw new MaxLengthError('Decode error - repeated field "clientUrls" had too many elements');
                            }
                            obj.clientUrls.push(reader.string());
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    clientUrls: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.initialCluster`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.clientUrls != null && obj.clientUrls === opts.limits.clientUrls) {
                                throw new MaxLengthError('Streaming decode error - repeated field "clientUrls" had too many elements');
                            }
                            yield {
                                field: `${prefix}.clientUrls[]`,
                                index: obj.clientUrls,
                                value: reader.string()
                            };
                            obj.clientUrls++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, JoinResponse.codec());
    }
    JoinResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, JoinResponse.codec(), opts);
    }
    JoinResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, JoinResponse.codec(), opts);
    }
    JoinResponse.stream = stream;
})(JoinResponse || (JoinResponse = {}));
export var Response;
(function (Response) {
    let _codec;
    Response.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.record != null) {
                    w.uint32(10);
                    ServiceRecord.codec().encode(obj.record, w);
                }
                if (obj.list != null) {
                    w.uint32(18);
                    ListResponse.codec().encode(obj.list, w);
                }
                if (obj.delete != null) {
                    w.uint32(26);
                    DeleteResponse.codec().encode(obj.delete, w);
                }
                if (obj.join != null) {
                    w.uint32(34);
                    JoinResponse.codec().encode(obj.join, w);
                }
                if (obj.failure != null) {
                    w.uint32(42);
                    Failure.codec().encode(obj.failure, w);
                }
                if (obj.getMany != null) {
                    w.uint32(50);
                    GetManyResponse.codec().encode(obj.getMany, w);
                }
                if (obj.mayWrite != null) {
                    w.uint32(58);
                    MayWriteResponse.codec().encode(obj.mayWrite, w);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.record = ServiceRecord.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            obj.list = ListResponse.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.list
                            });
                            break;
                        }
                        case 3: {
                            obj.delete = DeleteResponse.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.delete
                            });
                            break;
                        }
                        case 4: {
                            obj.join = JoinResponse.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.join
                            });
                            break;
                        }
                        case 5: {
                            obj.failure = Failure.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        case 6: {
                            obj.getMany = GetManyResponse.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.getMany
                            });
                            break;
                        }
                        case 7: {
                            obj.mayWrite = MayWriteResponse.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.mayWrite
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield* ServiceRecord.codec().stream(reader, reader.uint32(), `${prefix}.record`, {
                                limits: opts.limits?.record
                            });
                            break;
                        }
                        case 2: {
                            yield* ListResponse.codec().stream(reader, reader.uint32(), `${prefix}.list`, {
                                limits: opts.limits?.list
                            });
                            break;
                        }
                        case 3: {
                            yield* DeleteResponse.codec().stream(reader, reader.uint32(), `${prefix}.delete`, {
                                limits: opts.limits?.delete
                            });
                            break;
                        }
                        case 4: {
                            yield* JoinResponse.codec().stream(reader, reader.uint32(), `${prefix}.join`, {
                                limits: opts.limits?.join
                            });
                            break;
                        }
                        case 5: {
                            yield* Failure.codec().stream(reader, reader.uint32(), `${prefix}.failure`, {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        case 6: {
                            yield* GetManyResponse.codec().stream(reader, reader.uint32(), `${prefix}.getMany`, {
                                limits: opts.limits?.getMany
                            });
                            break;
                        }
                        case 7: {
                            yield* MayWriteResponse.codec().stream(reader, reader.uint32(), `${prefix}.mayWrite`, {
                                limits: opts.limits?.mayWrite
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Response.codec());
    }
    Response.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Response.codec(), opts);
    }
    Response.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Response.codec(), opts);
    }
    Response.stream = stream;
})(Response || (Response = {}));
export var Failure;
(function (Failure) {
    let Code;
    (function (Code) {
        Code["INTERNAL"] = "INTERNAL";
        Code["NOT_FOUND"] = "NOT_FOUND";
        Code["CAPACITY"] = "CAPACITY";
        Code["IMAGE"] = "IMAGE";
        Code["TIMEOUT"] = "TIMEOUT";
        Code["UNAUTHORIZED"] = "UNAUTHORIZED";
        Code["RATE_LIMITED"] = "RATE_LIMITED";
        Code["BAD_REQUEST"] = "BAD_REQUEST";
        Code["CONFLICT"] = "CONFLICT";
        Code["UNAVAILABLE"] = "UNAVAILABLE";
    })(Code = Failure.Code || (Failure.Code = {}));
    let __CodeValues;
    (function (__CodeValues) {
        __CodeValues[__CodeValues["INTERNAL"] = 0] = "INTERNAL";
        __CodeValues[__CodeValues["NOT_FOUND"] = 1] = "NOT_FOUND";
        __CodeValues[__CodeValues["CAPACITY"] = 2] = "CAPACITY";
        __CodeValues[__CodeValues["IMAGE"] = 3] = "IMAGE";
        __CodeValues[__CodeValues["TIMEOUT"] = 4] = "TIMEOUT";
        __CodeValues[__CodeValues["UNAUTHORIZED"] = 5] = "UNAUTHORIZED";
        __CodeValues[__CodeValues["RATE_LIMITED"] = 6] = "RATE_LIMITED";
        __CodeValues[__CodeValues["BAD_REQUEST"] = 7] = "BAD_REQUEST";
        __CodeValues[__CodeValues["CONFLICT"] = 8] = "CONFLICT";
        __CodeValues[__CodeValues["UNAVAILABLE"] = 9] = "UNAVAILABLE";
    })(__CodeValues || (__CodeValues = {}));
    (function (Code) {
        Code.codec = () => {
            return enumeration(__CodeValues);
        };
    })(Code = Failure.Code || (Failure.Code = {}));
    let _codec;
    Failure.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.code != null && __CodeValues[obj.code] !== 0) {
                    w.uint32(8);
                    Failure.Code.codec().encode(obj.code, w);
                }
                if ((obj.message != null && obj.message !== '')) {
                    w.uint32(18);
                    w.string(obj.message);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    code: Code.INTERNAL,
                    message: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.code = Failure.Code.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.message = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.code`,
                                value: Failure.Code.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.message`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Failure.codec());
    }
    Failure.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Failure.codec(), opts);
    }
    Failure.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Failure.codec(), opts);
    }
    Failure.stream = stream;
})(Failure || (Failure = {}));
