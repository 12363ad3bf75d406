import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
export var AllocateRequest;
(function (AllocateRequest) {
    let _codec;
    AllocateRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.service != null && obj.service !== '')) {
                    w.uint32(10);
                    w.string(obj.service);
                }
                if (obj.avoidPeers != null && obj.avoidPeers.length > 0) {
                    for (const value of obj.avoidPeers) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if ((obj.contentHash != null && obj.contentHash !== '')) {
                    w.uint32(26);
                    w.string(obj.contentHash);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    service: '',
                    avoidPeers: [],
                    contentHash: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.service = reader.string();
                            break;
                        }
                        case 2: {
                            if (opts.limits?.avoidPeers != null && obj.avoidPeers.length === opts.limits.avoidPeers) {
                                throw new MaxLengthError('Decode error - repeated field "avoidPeers" had too many elements');
                            }
                            obj.avoidPeers.push(reader.string());
                            break;
                        }
                        case 3: {
                            obj.contentHash = reader.string();
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
                    avoidPeers: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.service`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.avoidPeers != null && obj.avoidPeers === opts.limits.avoidPeers) {
                                throw new MaxLengthError('Streaming decode error - repeated field "avoidPeers" had too many elements');
                            }
                            yield {
                                field: `${prefix}.avoidPeers[]`,
                                index: obj.avoidPeers,
                                value: reader.string()
                            };
                            obj.avoidPeers++;
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.contentHash`,
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
        return encodeMessage(obj, AllocateRequest.codec());
    }
    AllocateRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, AllocateRequest.codec(), opts);
    }
    AllocateRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, AllocateRequest.codec(), opts);
    }
    AllocateRequest.stream = stream;
})(AllocateRequest || (AllocateRequest = {}));
export var Phases;
(function (Phases) {
    let _codec;
    Phases.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.pullMs != null && obj.pullMs !== 0)) {
                    w.uint32(8);
                    w.uint32(obj.pullMs);
                }
                if ((obj.createMs != null && obj.createMs !== 0)) {
                    w.uint32(16);
                    w.uint32(obj.createMs);
                }
                if ((obj.startMs != null && obj.startMs !== 0)) {
                    w.uint32(24);
                    w.uint32(obj.startMs);
                }
                if ((obj.readyMs != null && obj.readyMs !== 0)) {
                    w.uint32(32);
                    w.uint32(obj.readyMs);
                }
                if ((obj.totalMs != null && obj.totalMs !== 0)) {
                    w.uint32(40);
                    w.uint32(obj.totalMs);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    pullMs: 0,
                    createMs: 0,
                    startMs: 0,
                    readyMs: 0,
                    totalMs: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.pullMs = reader.uint32();
                            break;
                        }
                        case 2: {
                            obj.createMs = reader.uint32();
                            break;
                        }
                        case 3: {
                            obj.startMs = reader.uint32();
                            break;
                        }
                        case 4: {
                            obj.readyMs = reader.uint32();
                            break;
                        }
                        case 5: {
                            obj.totalMs = reader.uint32();
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
                                field: `${prefix}.pullMs`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.createMs`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.startMs`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.readyMs`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.totalMs`,
                                value: reader.uint32()
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
        return encodeMessage(obj, Phases.codec());
    }
    Phases.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Phases.codec(), opts);
    }
    Phases.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Phases.codec(), opts);
    }
    Phases.stream = stream;
})(Phases || (Phases = {}));
export var Allocated;
(function (Allocated) {
    let _codec;
    Allocated.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.peerId != null && obj.peerId !== '')) {
                    w.uint32(10);
                    w.string(obj.peerId);
                }
                if (obj.multiaddrs != null && obj.multiaddrs.length > 0) {
                    for (const value of obj.multiaddrs) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if (obj.phases != null) {
                    w.uint32(26);
                    Phases.codec().encode(obj.phases, w);
                }
                if ((obj.instanceId != null && obj.instanceId !== '')) {
                    w.uint32(34);
                    w.string(obj.instanceId);
                }
                if ((obj.reused != null && obj.reused !== false)) {
                    w.uint32(40);
                    w.bool(obj.reused);
                }
                if ((obj.contentHash != null && obj.contentHash !== '')) {
                    w.uint32(50);
                    w.string(obj.contentHash);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    peerId: '',
                    multiaddrs: [],
                    instanceId: '',
                    reused: false,
                    contentHash: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.peerId = reader.string();
                            break;
                        }
                        case 2: {
                            if (opts.limits?.multiaddrs != null && obj.multiaddrs.length === opts.limits.multiaddrs) {
                                throw new MaxLengthError('Decode error - repeated field "multiaddrs" had too many elements');
                            }
                            obj.multiaddrs.push(reader.string());
                            break;
                        }
                        case 3: {
                            obj.phases = Phases.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.phases
                            });
                            break;
                        }
                        case 4: {
                            obj.instanceId = reader.string();
                            break;
                        }
                        case 5: {
                            obj.reused = reader.bool();
                            break;
                        }
                        case 6: {
                            obj.contentHash = reader.string();
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
                    multiaddrs: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.peerId`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.multiaddrs != null && obj.multiaddrs === opts.limits.multiaddrs) {
                                throw new MaxLengthError('Streaming decode error - repeated field "multiaddrs" had too many elements');
                            }
                            yield {
                                field: `${prefix}.multiaddrs[]`,
                                index: obj.multiaddrs,
                                value: reader.string()
                            };
                            obj.multiaddrs++;
                            break;
                        }
                        case 3: {
                            yield* Phases.codec().stream(reader, reader.uint32(), `${prefix}.phases`, {
                                limits: opts.limits?.phases
                            });
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.instanceId`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.reused`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.contentHash`,
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
        return encodeMessage(obj, Allocated.codec());
    }
    Allocated.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Allocated.codec(), opts);
    }
    Allocated.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Allocated.codec(), opts);
    }
    Allocated.stream = stream;
})(Allocated || (Allocated = {}));
export var AllocateResponse;
(function (AllocateResponse) {
    let _codec;
    AllocateResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.allocated != null) {
                    w.uint32(10);
                    Allocated.codec().encode(obj.allocated, w);
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
                            obj.allocated = Allocated.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.allocated
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
                            yield* Allocated.codec().stream(reader, reader.uint32(), `${prefix}.allocated`, {
                                limits: opts.limits?.allocated
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
        return encodeMessage(obj, AllocateResponse.codec());
    }
    AllocateResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, AllocateResponse.codec(), opts);
    }
    AllocateResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, AllocateResponse.codec(), opts);
    }
    AllocateResponse.stream = stream;
})(AllocateResponse || (AllocateResponse = {}));
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
