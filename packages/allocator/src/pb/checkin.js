import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
export var CheckIn;
(function (CheckIn) {
    let Kind;
    (function (Kind) {
        Kind["READY"] = "READY";
        Kind["STATS"] = "STATS";
    })(Kind = CheckIn.Kind || (CheckIn.Kind = {}));
    let __KindValues;
    (function (__KindValues) {
        __KindValues[__KindValues["READY"] = 0] = "READY";
        __KindValues[__KindValues["STATS"] = 1] = "STATS";
    })(__KindValues || (__KindValues = {}));
    (function (Kind) {
        Kind.codec = () => {
            return enumeration(__KindValues);
        };
    })(Kind = CheckIn.Kind || (CheckIn.Kind = {}));
    let _codec;
    CheckIn.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.kind != null && __KindValues[obj.kind] !== 0) {
                    w.uint32(8);
                    CheckIn.Kind.codec().encode(obj.kind, w);
                }
                if ((obj.instanceId != null && obj.instanceId !== '')) {
                    w.uint32(18);
                    w.string(obj.instanceId);
                }
                if (obj.multiaddrs != null && obj.multiaddrs.length > 0) {
                    for (const value of obj.multiaddrs) {
                        w.uint32(26);
                        w.string(value);
                    }
                }
                if ((obj.idleMs != null && obj.idleMs !== 0n)) {
                    w.uint32(32);
                    w.uint64(obj.idleMs);
                }
                if ((obj.inFlight != null && obj.inFlight !== 0)) {
                    w.uint32(40);
                    w.uint32(obj.inFlight);
                }
                if ((obj.requestsTotal != null && obj.requestsTotal !== 0n)) {
                    w.uint32(48);
                    w.uint64(obj.requestsTotal);
                }
                if ((obj.draining != null && obj.draining !== false)) {
                    w.uint32(56);
                    w.bool(obj.draining);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    kind: Kind.READY,
                    instanceId: '',
                    multiaddrs: [],
                    idleMs: 0n,
                    inFlight: 0,
                    requestsTotal: 0n,
                    draining: false
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.kind = CheckIn.Kind.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.instanceId = reader.string();
                            break;
                        }
                        case 3: {
                            if (opts.limits?.multiaddrs != null && obj.multiaddrs.length === opts.limits.multiaddrs) {
                                throw new MaxLengthError('Decode error - repeated field "multiaddrs" had too many elements');
                            }
                            obj.multiaddrs.push(reader.string());
                            break;
                        }
                        case 4: {
                            obj.idleMs = reader.uint64();
                            break;
                        }
                        case 5: {
                            obj.inFlight = reader.uint32();
                            break;
                        }
                        case 6: {
                            obj.requestsTotal = reader.uint64();
                            break;
                        }
                        case 7: {
                            obj.draining = reader.bool();
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
                                field: `${prefix}.kind`,
                                value: CheckIn.Kind.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.instanceId`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 3: {
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
                        case 4: {
                            yield {
                                field: `${prefix}.idleMs`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.inFlight`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.requestsTotal`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 7: {
                            yield {
                                field: `${prefix}.draining`,
                                value: reader.bool()
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
        return encodeMessage(obj, CheckIn.codec());
    }
    CheckIn.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, CheckIn.codec(), opts);
    }
    CheckIn.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, CheckIn.codec(), opts);
    }
    CheckIn.stream = stream;
})(CheckIn || (CheckIn = {}));
export var CheckInResponse;
(function (CheckInResponse) {
    let _codec;
    CheckInResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.drain != null && obj.drain !== false)) {
                    w.uint32(8);
                    w.bool(obj.drain);
                }
                if (obj.failure != null) {
                    w.uint32(18);
                    Failure.codec().encode(obj.failure, w);
                }
                if ((obj.awaitService != null && obj.awaitService !== false)) {
                    w.uint32(24);
                    w.bool(obj.awaitService);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    drain: false,
                    awaitService: false
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.drain = reader.bool();
                            break;
                        }
                        case 2: {
                            obj.failure = Failure.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        case 3: {
                            obj.awaitService = reader.bool();
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
                                field: `${prefix}.drain`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 2: {
                            yield* Failure.codec().stream(reader, reader.uint32(), `${prefix}.failure`, {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.awaitService`,
                                value: reader.bool()
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
        return encodeMessage(obj, CheckInResponse.codec());
    }
    CheckInResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, CheckInResponse.codec(), opts);
    }
    CheckInResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, CheckInResponse.codec(), opts);
    }
    CheckInResponse.stream = stream;
})(CheckInResponse || (CheckInResponse = {}));
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
