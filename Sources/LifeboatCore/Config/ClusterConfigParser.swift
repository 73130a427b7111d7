import Foundation

extension ClusterConfig {
  /// Reads and checks `cluster.yml`.
  public static func load(_ path: String) throws(LifeboatError) -> ClusterConfig {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .usage("cannot read the cluster config \(path)")
    }
    return try parse(String(decoding: data, as: UTF8.self), path: path)
  }

  public static func parse(_ text: String, path: String) throws(LifeboatError) -> ClusterConfig {
    let file = URL(fileURLWithPath: path).lastPathComponent
    let root = try YAMLValue.parse(text, file: file)
    var nodes: [NodeEntry] = []
    if let list = try root["nodes"] {
      for item in try list.items() {
        guard let address = try item["address"]?.string(), !address.isEmpty else {
          throw item.error("a node needs an address")
        }
        nodes.append(
          NodeEntry(
            address: address, internalAddress: try item["internal_address"]?.string().nonEmpty,
            hostnameOverride: try item["hostname_override"]?.string().nonEmpty,
            roles: try item["role"]?.strings() ?? []))
      }
    }
    guard nodes.contains(where: \.isEtcd) else { throw root.error("no node has the role etcd") }
    var seen = Set<String>()
    for node in nodes where node.isEtcd && !seen.insert(node.address).inserted {
      throw root.error("nodes: \(node.address) is listed twice")
    }
    // Member names (`etcd-<hostname_override or address>`, lowercased) must differ: a plan with
    // two members of one name can only fail.
    var names: [String: String] = [:]
    for node in nodes where node.isEtcd {
      let member = "etcd-" + (node.hostnameOverride?.lowercased() ?? node.address)
      if let other = names[member] {
        throw root.error("nodes: \(other) and \(node.address) would both be etcd member \(member) (hostname_override must differ)")
      }
      names[member] = node.address
    }

    var backup = BackupConfig()
    if let etcd = try root["services"]?["etcd"] {
      // Legacy keys: `snapshot: true` with `creation: 12h` and `retention: 72h`.
      if try etcd["snapshot"]?.bool() == true {
        if let creation = try etcd["creation"] { backup.intervalHours = try hours(creation) }
        if let retention = try etcd["retention"] {
          backup.retention = min(Self.maxRetention, max(1, try hours(retention) / max(1, backup.intervalHours)))
        }
      }
      if let config = try etcd["backup_config"] {
        backup.enabled = try config["enabled"]?.bool() ?? true
        backup.intervalHours = try positive(config["interval_hours"], max: Self.maxHours) ?? backup.intervalHours
        backup.retention = try positive(config["retention"], max: Self.maxRetention) ?? backup.retention
        backup.safeTimestamp = try config["safe_timestamp"]?.bool() ?? false
        backup.timeoutSeconds = try positive(config["timeout"], max: Self.maxSeconds) ?? 300
        if let s3 = try config["s3backupconfig"] {
          guard let bucket = try s3["bucket_name"]?.string().nonEmpty else { throw s3.error("bucket_name is required") }
          guard let endpoint = try s3["endpoint"]?.string().nonEmpty else { throw s3.error("endpoint is required") }
          backup.s3 = S3BackupConfig(
            accessKey: try s3["access_key"]?.string().nonEmpty, secretKey: try s3["secret_key"]?.string().nonEmpty,
            bucketName: bucket, region: try s3["region"]?.string().nonEmpty, endpoint: endpoint,
            customCA: try s3["custom_ca"]?.string().nonEmpty, folder: try s3["folder"]?.string().nonEmpty)
        }
      }
    }

    var settings = LifeboatSettings()
    if let section = try root["lifeboat"] {
      try section.onlyKeys([
        "agent_port", "client_port", "peer_port", "etcd_tls", "snapshot_dir", "data_dir", "run_dir", "state_file", "cert_dir",
        "runtime", "allowed_clients", "post_restore_hooks", "health_timeout", "nodes", "s3_insecure_http",
        "schedule", "timezone", "interval_seconds", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "drill", "s3", "encryption",
        "compression", "s3_keep_last", "s3_keep_hourly", "s3_keep_daily", "s3_keep_weekly",
      ])
      settings.agentPort = try port(section["agent_port"]) ?? settings.agentPort
      settings.clientPort = try port(section["client_port"]) ?? settings.clientPort
      settings.peerPort = try port(section["peer_port"]) ?? settings.peerPort
      settings.etcdTLS = try section["etcd_tls"]?.bool() ?? true
      settings.snapshotDir = try absolutePath(section["snapshot_dir"]) ?? settings.snapshotDir
      settings.dataDir = try absolutePath(section["data_dir"]) ?? settings.dataDir
      settings.dataDirStated = try section["data_dir"] != nil
      settings.runDir = try absolutePath(section["run_dir"]) ?? settings.runDir
      settings.stateFile = try section["state_file"]?.string()
      settings.certDir = try absolutePath(section["cert_dir"]) ?? settings.certDir
      settings.certDirStated = try section["cert_dir"] != nil
      settings.allowedClients = try section["allowed_clients"]?.strings() ?? []
      settings.postRestoreHooks = try section["post_restore_hooks"]?.strings() ?? []
      settings.healthTimeoutSeconds = try positive(section["health_timeout"], max: Self.maxSeconds) ?? settings.healthTimeoutSeconds
      settings.s3InsecureHTTP = try section["s3_insecure_http"]?.bool() ?? false
      if let compression = try section["compression"] {
        guard let value = Compression(rawValue: try compression.string()) else {
          throw compression.error("expected fast, best or none")
        }
        settings.compression = value
      }
      if let encryption = try section["encryption"] {
        try encryption.onlyKeys(["age_recipients", "encrypt_local"])
        settings.encryptLocal = try encryption["encrypt_local"]?.bool() ?? false
        if let list = try encryption["age_recipients"] {
          for (index, text) in try list.strings().enumerated() {
            do { settings.ageRecipients.append(try AgeRecipient(parsing: text)) } catch {
              throw list.error("entry \(index + 1): \(error.message)")
            }
          }
        }
        if settings.encryptLocal, settings.ageRecipients.isEmpty {
          throw encryption.error("encrypt_local needs age_recipients")
        }
      }
      if let s3 = try section["s3"] {
        try s3.onlyKeys(["proxy", "sse", "sse_kms_key_id", "sse_customer_key_file", "object_lock_mode", "object_lock_days", "checksum"])
        if let mode = try s3["object_lock_mode"] {
          guard ["GOVERNANCE", "COMPLIANCE"].contains(try mode.string()) else { throw mode.error("expected GOVERNANCE or COMPLIANCE") }
          settings.s3.objectLockMode = try mode.string()
        }
        if let days = try s3["object_lock_days"] {
          let text = try days.string()
          guard text == "prune" || Int(text).map({ (1...36500).contains($0) }) == true else {
            throw days.error("expected a number of days from 1 to 36500, or prune")
          }
          settings.s3.objectLockDays = text
        }
        if (settings.s3.objectLockMode == nil) != (settings.s3.objectLockDays == nil) {
          throw s3.error("object_lock_mode and object_lock_days go together")
        }
        if let checksum = try s3["checksum"] {
          guard ["crc32c", "off"].contains(try checksum.string()) else { throw checksum.error("expected crc32c or off") }
          settings.s3.checksum = try checksum.string()
        }
        settings.s3.proxy = try s3["proxy"]?.string().nonEmpty
        if let sse = try s3["sse"] {
          guard ["AES256", "aws:kms"].contains(try sse.string()) else { throw sse.error("expected AES256 or aws:kms") }
          settings.s3.sse = try sse.string()
        }
        settings.s3.sseKMSKeyID = try s3["sse_kms_key_id"]?.string().nonEmpty
        settings.s3.sseCustomerKeyFile = try absolutePath(s3["sse_customer_key_file"])
      }
      if let schedule = try section["schedule"] {
        do { settings.schedule = try CronExpression(try schedule.string()) } catch { throw schedule.error(error.message) }
      }
      if let zone = try section["timezone"] {
        guard let parsed = TimeZone(identifier: try zone.string()) else { throw zone.error("unknown time zone '\(try zone.string())'") }
        settings.timezone = parsed
      }
      settings.intervalSeconds = try positive(section["interval_seconds"], max: Self.maxHours * 3600)
      settings.keepLast = try positive(section["keep_last"], max: Self.maxRetention)
      settings.keepHourly = try positive(section["keep_hourly"], max: Self.maxRetention)
      settings.keepDaily = try positive(section["keep_daily"], max: Self.maxRetention)
      settings.keepWeekly = try positive(section["keep_weekly"], max: Self.maxRetention)
      settings.s3KeepLast = try positive(section["s3_keep_last"], max: Self.maxRetention)
      settings.s3KeepHourly = try positive(section["s3_keep_hourly"], max: Self.maxRetention)
      settings.s3KeepDaily = try positive(section["s3_keep_daily"], max: Self.maxRetention)
      settings.s3KeepWeekly = try positive(section["s3_keep_weekly"], max: Self.maxRetention)
      if let runtime = try section["runtime"] { settings.runtime = try parseRuntime(runtime) }
      if let drill = try section["drill"] {
        settings.drill = try parseDrill(drill)
      } else if try section.keys().contains("drill") {
        // `drill:` with nothing under it would silently mean no drills.
        throw section.error("drill: give it a schedule (cron) or interval_seconds")
      }
      if settings.drill != nil, settings.encryptLocal {
        // An agent holds no identity: it could drill nothing.
        throw section.error("drill: the agents cannot read encrypted local copies (encryption.encrypt_local); drill from the operator's side with `snapshot drill --config ... --age-identity`")
      }
      if let overrides = try section["nodes"] {
        for (address, value) in try overrides.entries() {
          guard nodes.contains(where: { $0.address == address && $0.isEtcd }) else {
            throw value.error("not the address of an etcd node in nodes")
          }
          try value.onlyKeys(["client_port", "peer_port", "agent_port", "snapshot_dir", "data_dir", "run_dir", "docker_host"])
          var override = LifeboatSettings.NodeOverride()
          override.clientPort = try port(value["client_port"])
          override.peerPort = try port(value["peer_port"])
          override.agentPort = try port(value["agent_port"])
          override.snapshotDir = try absolutePath(value["snapshot_dir"])
          override.dataDir = try absolutePath(value["data_dir"])
          override.runDir = try absolutePath(value["run_dir"])
          override.dockerHost = try dockerHost(value["docker_host"])
          settings.nodes[address] = override
        }
      }
    }
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var config = ClusterConfig(nodes: nodes, backup: backup, lifeboat: settings, path: absolute)
    // A restore moves the data dir aside: the agent's own files and the snapshots must not be in it.
    for node in config.etcdNodes {
      for (key, dir) in [("run_dir", node.runDir), ("snapshot_dir", node.snapshotDir), ("drill.scratch_dir", config.drillScratchDir(node))]
      where dir == node.dataDir || dir.hasPrefix(node.dataDir + "/") {
        throw .usage("\(absolute): \(key) \(dir) of \(node.address) is inside its data_dir \(node.dataDir), which a restore moves aside")
      }
    }
    if let name = try root["cluster_name"]?.string(), !name.isEmpty {
      guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
        throw try root["cluster_name"]!.error("letters, digits, - _ . only")
      }
      config.clusterName = name
    }
    return config
  }

  private static func parseDrill(_ value: YAMLValue) throws(LifeboatError) -> DrillSettings {
    try value.onlyKeys(["schedule", "interval_seconds", "snapshot", "scratch_dir", "timeout"])
    var drill = DrillSettings()
    if let schedule = try value["schedule"] {
      do { drill.schedule = try CronExpression(try schedule.string()) } catch { throw schedule.error(error.message) }
    }
    drill.intervalSeconds = try positive(value["interval_seconds"], max: Self.maxHours * 3600)
    guard (drill.schedule == nil) != (drill.intervalSeconds == nil) else {
      throw value.error("give the drill a schedule (cron) or interval_seconds, one of them")
    }
    if let snapshot = try value["snapshot"] {
      guard try snapshot.string() == "latest" else { throw snapshot.error("only 'latest' (the newest snapshot of the node) is supported") }
    }
    drill.scratchDir = try absolutePath(value["scratch_dir"])
    drill.timeoutSeconds = try positive(value["timeout"], max: Self.maxSeconds) ?? drill.timeoutSeconds
    return drill
  }

  private static func parseRuntime(_ value: YAMLValue) throws(LifeboatError) -> RuntimeSettings {
    var runtime = RuntimeSettings()
    if case .scalar = value.node {
      let name = try value.string()
      guard let kind = RuntimeSettings.Kind(rawValue: name) else {
        throw value.error("unknown runtime '\(name)' (one of: \(RuntimeSettings.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      runtime.kind = kind
      return runtime
    }
    try value.onlyKeys(["type", "container", "image", "unit", "stop", "start", "etcd", "restore_tool", "extra_args", "docker_host"])
    if let type = try value["type"] {
      let name = try type.string()
      guard let kind = RuntimeSettings.Kind(rawValue: name) else {
        throw type.error("unknown runtime '\(name)' (one of: \(RuntimeSettings.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      runtime.kind = kind
    }
    runtime.container = try value["container"]?.string() ?? runtime.container
    runtime.image = try value["image"]?.string()
    runtime.unit = try value["unit"]?.string() ?? runtime.unit
    runtime.stopCommand = try value["stop"]?.string()
    runtime.startCommand = try value["start"]?.string()
    runtime.etcdBinary = try value["etcd"]?.string() ?? runtime.etcdBinary
    runtime.restoreTool = try value["restore_tool"]?.string()
    runtime.extraArgs = try value["extra_args"]?.strings() ?? []
    runtime.dockerHost = try dockerHost(value["docker_host"]) ?? runtime.dockerHost
    if runtime.kind == .command, runtime.stopCommand == nil || runtime.startCommand == nil {
      throw value.error("the command runtime needs both stop and start")
    }
    return runtime
  }

  /// Upper bounds that keep every later computation (seconds of an interval, retention windows)
  /// far from overflowing: ten years of hours, a day of seconds for timeouts, 100 000 snapshots.
  static let maxHours = 87_600
  static let maxSeconds = 86_400
  static let maxRetention = 100_000

  private static func positive(_ value: YAMLValue?, max: Int) throws(LifeboatError) -> Int? {
    guard let value else { return nil }
    let n = try value.int()
    guard n >= 1 else { throw value.error("must be at least 1") }
    guard n <= max else { throw value.error("must be at most \(max)") }
    return n
  }

  private static func port(_ value: YAMLValue?) throws(LifeboatError) -> Int? {
    guard let value else { return nil }
    let port = try value.int()
    guard (1...65535).contains(port) else { throw value.error("not a port number: \(port)") }
    return port
  }

  /// `unix:///absolute/path.sock`, short enough for a socket address (108 bytes with its NUL).
  private static func dockerHost(_ value: YAMLValue?) throws(LifeboatError) -> String? {
    guard let value else { return nil }
    let raw = try value.string()
    guard raw.hasPrefix("unix:///") else { throw value.error("must be a unix socket: unix:///var/run/docker.sock") }
    guard raw.utf8.count - "unix://".count < 108 else { throw value.error("the socket path must be shorter than 108 bytes") }
    return raw
  }

  private static func absolutePath(_ value: YAMLValue?) throws(LifeboatError) -> String? {
    guard let value else { return nil }
    let raw = try value.string()
    guard raw.hasPrefix("/") else { throw value.error("must be an absolute path") }
    let path = (raw as NSString).standardizingPath
    guard path != "/", !raw.split(separator: "/").contains("..") else { throw value.error("must be a directory below /, without ..") }
    return path
  }

  /// `12h`, `72h`, `30m` or a bare number of hours.
  private static func hours(_ value: YAMLValue) throws(LifeboatError) -> Int {
    let text = try value.string().trimmingCharacters(in: .whitespaces)
    var parsed: Int?
    if let hours = Int(text) {
      parsed = hours
    } else if text.hasSuffix("h"), let hours = Int(text.dropLast()) {
      parsed = hours
    } else if text.hasSuffix("m"), let minutes = Int(text.dropLast()) {
      parsed = max(1, minutes / 60)
    }
    guard let parsed else { throw value.error("expected a duration like 12h, found '\(text)'") }
    guard (1...maxHours).contains(parsed) else { throw value.error("must be between 1h and \(maxHours)h") }
    return parsed
  }
}

extension String {
  var nonEmpty: String? { isEmpty ? nil : self }
}
