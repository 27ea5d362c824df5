import Foundation

/// Test certificates (P-256, valid until 2126): a CA, a node certificate it signed for
/// `localhost` and `127.0.0.1`, and an unrelated self-signed one. Made with openssl for
/// these tests only.
package enum TestCertificates {
    package static let ca = """
        -----BEGIN CERTIFICATE-----
        MIIBgzCCASmgAwIBAgIULrnc9MvsdA4f4q8fpb7AeUEf4X0wCgYIKoZIzj0EAwIw
        FjEUMBIGA1UEAwwLRE5BIHRlc3QgQ0EwIBcNMjYxMTIyMDczNzE2WhgPMjEyNjEw
        MjkwNzM3MTZaMBYxFDASBgNVBAMMC0ROQSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI
        KoZIzj0DAQcDQgAEMggOEqqeHjxgCmrS8v+WdCcfOxfCcMw8zZ8jwgjlJ+5Ftp5A
        TFOfrIKcBk/0DGzLdS0HAXfvbltLqZ1eGjK1uqNTMFEwHQYDVR0OBBYEFNOYdrt0
        rVX+IGHym8JbM+TaUKLrMB8GA1UdIwQYMBaAFNOYdrt0rVX+IGHym8JbM+TaUKLr
        MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAIGWceO4RD+g03Qi
        gNt3ImKvfhh1J3stans3iKSpkzORAiAejCnUFQSqvq7otCxb3eOQLRKqLxb3lA0a
        wjqpdDrc8Q==
        -----END CERTIFICATE-----
        """

    package static let node = """
        -----BEGIN CERTIFICATE-----
        MIIBxTCCAWugAwIBAgIUOmfedPUTu1SW3KfCw1TWkLE1PL8wCgYIKoZIzj0EAwIw
        FjEUMBIGA1UEAwwLRE5BIHRlc3QgQ0EwIBcNMjYxMTIyMDczNzE3WhgPMjEyNjEw
        MjkwNzM3MTdaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqG
        SM49AwEHA0IABHsFN7FPVcY4AtKMrGnuKRJwnOMWbRO3dBM1P1IBXsv8AHVtNWV1
        +10jozr4hiQqPKucBj62IlB4H0MwdsWycHKjgZYwgZMwGgYDVR0RBBMwEYIJbG9j
        YWxob3N0hwR/AAABMAkGA1UdEwQCMAAwCwYDVR0PBAQDAgeAMB0GA1UdJQQWMBQG
        CCsGAQUFBwMBBggrBgEFBQcDAjAdBgNVHQ4EFgQUXLsqhlWJkq9fIa6by4WHyNu3
        ndUwHwYDVR0jBBgwFoAU05h2u3StVf4gYfKbwlsz5NpQouswCgYIKoZIzj0EAwID
        SAAwRQIgVFN4/+R2MzPi2QCdMeeoArFS/W6LFGAay7m8ZF/JKeUCIQD0Rg4+u+GR
        dvSeqtUtlwJiJak3YvQSPN2zuONJxhWmMQ==
        -----END CERTIFICATE-----
        """

    package static let nodeKey = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+kZYi12PP0sPO2yG
        PEf6zLf4IEyKAOW6MaMxao8SxjqhRANCAAR7BTexT1XGOALSjKxp7ikScJzjFm0T
        t3QTNT9SAV7L/AB1bTVldftdI6M6+IYkKjyrnAY+tiJQeB9DMHbFsnBy
        -----END PRIVATE KEY-----
        """

    package static let other = """
        -----BEGIN CERTIFICATE-----
        MIIBmTCCAUGgAwIBAgIUZpaL4nVZ6Vn6L1RLcvWTNnb5tIcwCgYIKoZIzj0EAwIw
        FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjA3MzcxN1oYDzIxMjYxMDI5
        MDczNzE3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
        PQMBBwNCAAQ9ERGcplqxtML7opJz9NJf8LTuKW9je4S3SpUnDXXz5cHv3ixrBdIc
        vRHqj3jjxADeYPR9rgDWLqwjh5vYxdvbo28wbTAdBgNVHQ4EFgQUds9ZEq7naHqW
        iZI45nYyIZtgiyowHwYDVR0jBBgwFoAUds9ZEq7naHqWiZI45nYyIZtgiyowDwYD
        VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
        zj0EAwIDRgAwQwIfcGhRBzeMEmgGopId4x795Ukdm/YeFLflZhBxD/gjewIgeFdX
        49uviHotspZLkTZp3b1FR8pdXScXM7YYZ00RYK0=
        -----END CERTIFICATE-----
        """

    package static let otherKey = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXtgLjHxaZFtOz0vR
        t/pFSXtcuiaOOezoVAaDEXi/0vKhRANCAAQ9ERGcplqxtML7opJz9NJf8LTuKW9j
        e4S3SpUnDXXz5cHv3ixrBdIcvRHqj3jjxADeYPR9rgDWLqwjh5vYxdvb
        -----END PRIVATE KEY-----
        """

    /// Paths of PEM files holding the CA, the node certificate and its key.
    package struct Files: Sendable {
        package let ca: String
        package let certificate: String
        package let key: String
    }

    /// Writes the CA, node certificate and key into `directory`.
    package static func write(to directory: String) throws -> Files {
        let files = Files(ca: directory + "/ca.pem", certificate: directory + "/node.pem", key: directory + "/node-key.pem")
        try ca.write(toFile: files.ca, atomically: true, encoding: .utf8)
        try node.write(toFile: files.certificate, atomically: true, encoding: .utf8)
        try nodeKey.write(toFile: files.key, atomically: true, encoding: .utf8)
        return files
    }
}
